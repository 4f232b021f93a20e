"""Typed conversion: Documents -> specs."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.errors import Problem
from controller.load.common import PREDEFINED
from controller.load.problems import _problem
from controller.load.syntax import parse_exposed, parse_extra_host, parse_ip, parse_link, parse_port_mapping
from controller.model import (
    Attachment,
    ContainerSpec,
    Document,
    IPAMConfig,
    NetworkSpec,
    PortSpec,
)

# --------------------------------------------------------------------------- typed conversion


@dataclass
class _Network:
    doc: Document
    spec: NetworkSpec


@dataclass
class _Container:
    doc: Document
    spec: ContainerSpec
    port_items: tuple[int, ...]  # for each PortSpec, its index in spec.ports (ranges expand)


def _spec_body(doc: Document) -> Mapping[str, Any]:
    spec = doc.body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _labels(doc: Document) -> dict[str, str]:
    metadata = doc.body.get("metadata")
    return _strings(metadata.get("labels") if isinstance(metadata, Mapping) else None)


def _strings(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Option/label values as Docker stores them: YAML `true`/`1500` become "true"/"1500"."""
    if not values:
        return {}
    return {k: _option_text(v) for k, v in values.items()}


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def network_spec(doc: Document, builtin: bool = False) -> NetworkSpec:
    """The typed spec of one valid Network document: the only reader of a network's body."""
    return _network(doc, builtin).spec


def container_spec(doc: Document) -> ContainerSpec:
    """The typed spec of one valid Container document: the only reader of a container's body
    (so "an attachment is a name or {name: ...}, default [bridge]" is said once, here)."""
    return _container(doc).spec


def attachment_items(attachments: tuple[Attachment, ...]) -> list[str | dict[str, Any]]:
    """Attachments written back as manifest items (the inverse of _attachment), for the
    imperative commands that change a stored container's networks."""
    out: list[str | dict[str, Any]] = []
    for a in attachments:
        item: dict[str, Any] = {"name": a.network}
        if a.ipv4_address:
            item["ipv4Address"] = a.ipv4_address
        if a.ipv6_address:
            item["ipv6Address"] = a.ipv6_address
        if a.aliases:
            item["aliases"] = list(a.aliases)
        out.append(item if len(item) > 1 else a.network)
    return out


def _network(doc: Document, builtin: bool) -> _Network:
    spec = _spec_body(doc)
    ipam = spec.get("ipam") or {}
    network = NetworkSpec(
        name=doc.name,
        driver=spec.get("driver", "bridge"),
        ipam=tuple(_ipam_config(c) for c in ipam.get("config") or ()),
        internal=bool(spec.get("internal", False)),
        enable_ipv6=bool(spec.get("enableIPv6", False)),
        attachable=bool(spec.get("attachable", False)),
        options=_strings(spec.get("options")),
        labels=_labels(doc),
        source=doc.source,
        builtin=builtin,
    )
    return _Network(doc, network)


def _ipam_config(config: Mapping[str, Any]) -> IPAMConfig:
    def address(text: str | None) -> str | None:
        return str(ipaddress.ip_address(text)) if text else None

    def subnet(text: str | None) -> str | None:
        return str(ipaddress.ip_network(text)) if text else None

    aux = config.get("auxAddresses") or {}
    return IPAMConfig(
        subnet=subnet(config.get("subnet")),
        gateway=address(config.get("gateway")),
        ip_range=subnet(config.get("ipRange")),
        aux_addresses={k: str(ipaddress.ip_address(v)) for k, v in aux.items()},
    )


def _container(doc: Document) -> _Container:
    spec = _spec_body(doc)
    ports: list[PortSpec] = []
    items: list[int] = []
    for i, item in enumerate(spec.get("ports") or ()):
        expanded = parse_port_mapping(_port_text(item))
        ports.extend(expanded)
        items.extend([i] * len(expanded))
    container = ContainerSpec(
        name=doc.name,
        networks=tuple(_attachment(n) for n in spec.get("networks") or ("bridge",)),
        hostname=spec.get("hostname"),
        ports=tuple(ports),
        expose=tuple(p for e in spec.get("expose") or () for p in parse_exposed(str(e))),
        links=tuple(parse_link(link) for link in spec.get("links") or ()),
        dns=tuple(str(parse_ip(a)) for a in spec.get("dns") or ()),
        dns_search=tuple(spec.get("dnsSearch") or ()),
        dns_options=tuple(spec.get("dnsOptions") or ()),
        extra_hosts=tuple(parse_extra_host(h) for h in spec.get("extraHosts") or ()),
        labels=_labels(doc),
        source=doc.source,
    )
    return _Container(doc, container, tuple(items))


def _port_object_problems(doc: Document, invalid: set[str]) -> list[Problem]:
    """What the schema cannot say about a port object: both ranges must have one length.
    Checked for every item the schema accepted, even when other parts of the document failed."""
    ports = _spec_body(doc).get("ports")
    problems: list[Problem] = []
    for i, item in enumerate(ports if isinstance(ports, list) else ()):
        path = f"spec.ports[{i}]"
        if not isinstance(item, Mapping) or any(
            p == path or p.startswith((f"{path}.", f"{path}[")) for p in invalid
        ):
            continue
        try:
            parse_port_mapping(_port_text(item))
        except ValueError as exc:
            problems.append(_problem(doc, path, str(exc)))
    return problems


def _port_text(item: object) -> str:
    """The object form written as Docker's string form, so both share one parser."""
    if not isinstance(item, Mapping):
        return str(item)
    host_ip = item.get("hostIP")
    ip = "" if host_ip is None else f"[{host_ip}]:" if ":" in host_ip else f"{host_ip}:"
    return f"{ip}{item['hostPort']}:{item['containerPort']}/{item.get('protocol', 'tcp')}"


def _attachment(item: str | Mapping[str, Any]) -> Attachment:
    if isinstance(item, str):
        return Attachment(item)
    v4, v6 = item.get("ipv4Address"), item.get("ipv6Address")
    return Attachment(
        network=item["name"],
        ipv4_address=str(parse_ip(v4)) if v4 else None,
        ipv6_address=str(parse_ip(v6)) if v6 else None,
        aliases=tuple(item.get("aliases") or ()),
    )


def _accepted_networks(networks: list[_Network]) -> list[_Network]:
    """User networks that are not attempts to redefine a pre-defined one."""
    return [n for n in networks if n.spec.builtin or n.spec.name not in _predefined(networks)]


def _predefined(networks: list[_Network]) -> frozenset[str]:
    return PREDEFINED | {n.spec.name for n in networks if n.spec.builtin}
