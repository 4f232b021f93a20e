"""What the embedded DNS server answers, as a pure table built from a Target.

Docker's rules (the seed article, "embedded DNS server"):

- Only containers on a user-defined network use the embedded server (see
  `controller.desired.uses_embedded_dns`); the default bridge has no discovery.
- A container sees, on each user-defined network it is attached to, every container of that
  network (itself included) under its name, short ID, hostname and network-scoped aliases,
  each also as `NAME.NETWORK`; several containers with one alias give several addresses.
- It also sees the aliases of its own legacy links, and PTR records (`NAME.NETWORK`) for the
  addresses it can see.
- A name that exists locally but not for the asker is NXDOMAIN (isolation; never forwarded,
  so internal names do not leak upstream either). Anything else goes upstream, unless the
  container is only on internal networks.

The table is per network (a view is an ordered list of networks), so it stays linear in the
number of containers; `lookup` is what the server calls on a cache miss. `to_json` and
`from_json` carry the table from the pipeline (which publishes it after every converge) to
the server process; `hosts_file` gives the host a hosts(5) view of every container.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.desired import uses_embedded_dns
from controller.model import ContainerTarget, Target

HOST_VIEW = ""  # the host's own view: every network, no links, no forwarding
_REVERSE_V4 = ".in-addr.arpa"
_REVERSE_V6 = ".ip6.arpa"


@dataclass(frozen=True)
class NetworkRecords:
    """The names one network publishes: name -> addresses, reverse name -> PTR target."""

    name: str
    subnets: tuple[str, ...] = ()
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ptr: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class View:
    """What one asker sees: its networks in attachment order (first match wins, as in
    Docker), its link aliases, and where unknown names go."""

    name: str
    netns: str | None
    networks: tuple[str, ...]
    links: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    upstreams: tuple[str, ...] = ()  # the container's `dns:`; empty: the host's resolvers
    forward: bool = True  # False: only on internal networks (or the host's view)


@dataclass(frozen=True)
class Found:
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Pointer:
    target: str


class Miss:
    """A name that is not ours to answer: forward it (or refuse, for a view without upstreams)."""


class Hidden:
    """A name that exists here, but not for this asker: NXDOMAIN."""


MISS = Miss()
HIDDEN = Hidden()
Answer = Found | Pointer | Miss | Hidden


@dataclass(frozen=True)
class Records:
    networks: Mapping[str, NetworkRecords]
    views: Mapping[str, View]
    all_containers: frozenset[str] = frozenset()  # every container, attached or not
    known: frozenset[str] = frozenset()  # every local name, for isolation
    local_nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def of(
        cls, networks: Mapping[str, NetworkRecords], views: Mapping[str, View],
        container_names: Iterable[str] = (),
    ) -> Records:
        names = frozenset(n.lower() for n in container_names)
        known = {n for net in networks.values() for n in net.names} | names
        subnets = sorted(
            {ipaddress.ip_network(s) for net in networks.values() for s in net.subnets},
            key=lambda n: (n.version, n),
        )
        return cls(dict(networks), dict(views), names, frozenset(known), tuple(subnets))

    @property
    def containers(self) -> list[View]:
        """Views that need a server inside a container namespace."""
        return [v for v in self.views.values() if v.netns is not None]

    def lookup(self, view_name: str, qname: str) -> Answer:
        """Answer `qname` (any case, trailing dot or not) for the asker `view_name`."""
        view = self.views.get(view_name)
        if view is None:
            return HIDDEN
        name = qname.lower().rstrip(".")
        if name.endswith((_REVERSE_V4, _REVERSE_V6)):
            return self._reverse(view, name)
        if name in view.links:
            return Found(view.links[name])
        for net_name in view.networks:
            net = self.networks.get(net_name)
            if net is not None and name in net.names:
                return Found(net.names[name])
        return HIDDEN if name in self.known else MISS

    def _reverse(self, view: View, name: str) -> Answer:
        for net_name in view.networks:
            net = self.networks.get(net_name)
            if net is not None and name in net.ptr:
                return Pointer(net.ptr[name])
        address = address_of_reverse(name)
        if address is not None and any(address in net for net in self.local_nets):
            return HIDDEN  # one of our subnets: no upstream knows it
        return MISS


# --------------------------------------------------------------------------- building


def build(target: Target, remote: Iterable[tuple[str, str, str]] = ()) -> Records:
    """The table for every network with addresses, and a view per embedded-DNS container.

    `remote`: (network, container, ip) of endpoints on the other live hosts of a cluster
    (overlay networks); their names (`NAME`, `NAME.NETWORK`) and PTRs join that network's
    records, but never replace a local name or PTR."""
    by_network: dict[str, list[tuple[str, str]]] = {}
    for net_name, container_name, ip in remote:
        by_network.setdefault(net_name, []).append((container_name, ip))
    networks: dict[str, NetworkRecords] = {}
    for net in target.networks:
        if not net.subnets:
            continue  # host, none: nothing to publish
        names: dict[str, list[str]] = {}
        ptr: dict[str, str] = {}
        for container in target.containers:
            for ep in container.endpoints:
                if ep.network != net.name:
                    continue
                addresses = [str(i.ip) for i in (ep.ipv4, ep.ipv6) if i is not None]
                for label in container_names(container, ep.aliases):
                    for key in (label, f"{label}.{net.name.lower()}"):
                        known = names.setdefault(key, [])
                        known.extend(a for a in addresses if a not in known)
                for a in addresses:
                    ptr.setdefault(ipaddress.ip_address(a).reverse_pointer, f"{container.name}.{net.name}")
        local = set(names)
        for container_name, ip in sorted(by_network.get(net.name, ())):
            label = container_name.lower().rstrip(".")
            try:
                reverse = ipaddress.ip_address(ip).reverse_pointer
            except ValueError:
                continue  # a damaged record is not ours to publish
            if not label:
                continue
            for key in (label, f"{label}.{net.name.lower()}"):
                if key in local:
                    continue  # a local container (or alias) of that name wins
                known = names.setdefault(key, [])
                if ip not in known:
                    known.append(ip)
            ptr.setdefault(reverse, f"{container_name}.{net.name}")
        networks[net.name] = NetworkRecords(
            net.name,
            tuple(str(s.subnet) for s in net.subnets),
            {k: tuple(v) for k, v in names.items()},
            ptr,
        )
    views = {c.name: _view(c, target, networks) for c in target.containers if uses_embedded_dns(c, target)}
    views[HOST_VIEW] = View(HOST_VIEW, None, _host_order(target, networks), forward=False)
    return Records.of(networks, views, (c.name for c in target.containers))


def container_names(container: ContainerTarget, aliases: Iterable[str]) -> list[str]:
    """Name, short ID, hostname, aliases: lower-case, without duplicates, in that order."""
    return list(dict.fromkeys(
        n.lower().rstrip(".")
        for n in (container.name, container.short_id, container.hostname, *aliases)
        if n
    ))


def _view(container: ContainerTarget, target: Target, networks: Mapping[str, NetworkRecords]) -> View:
    mine = [
        ep.network for ep in container.endpoints
        if ep.network in networks and not _builtin(target, ep.network)
    ]
    links: dict[str, tuple[str, ...]] = {}
    for link in container.links:
        other = target.container(link.container)
        if other is None:
            continue
        ep = next((e for e in other.endpoints if e.network in mine), None)
        if ep is not None:
            links[link.alias.lower()] = tuple(str(i.ip) for i in (ep.ipv4, ep.ipv6) if i is not None)
    internal_only = all(
        (n := target.network(ep.network)) is not None and n.internal for ep in container.endpoints
    )
    return View(container.name, container.netns, tuple(mine), links, container.dns, not internal_only)


def _builtin(target: Target, network: str) -> bool:
    net = target.network(network)
    return net is None or net.builtin


def _host_order(target: Target, networks: Mapping[str, NetworkRecords]) -> tuple[str, ...]:
    """The host is on every bridge: user-defined networks first, then the default ones."""
    return tuple(sorted(networks, key=lambda n: (_builtin(target, n), n)))


def address_of_reverse(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a full reverse name stands for (`4.3.2.1.in-addr.arpa` -> 1.2.3.4)."""
    try:
        if name.endswith(_REVERSE_V4):
            labels = name[: -len(_REVERSE_V4)].split(".")
            return ipaddress.IPv4Address(".".join(reversed(labels))) if len(labels) == 4 else None
        nibbles = name[: -len(_REVERSE_V6)].split(".")
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        return ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16))
    except ValueError:
        return None


# --------------------------------------------------------------------------- files


def to_json(records: Records, generation: int) -> str:
    body: dict[str, Any] = {
        "generation": generation,
        "networks": {
            n.name: {"subnets": list(n.subnets), "names": {k: list(v) for k, v in n.names.items()},
                     "ptr": dict(n.ptr)}
            for n in records.networks.values()
        },
        "containers": sorted(records.all_containers),
        "views": {
            v.name: {"netns": v.netns, "networks": list(v.networks),
                     "links": {k: list(a) for k, a in v.links.items()},
                     "upstreams": list(v.upstreams), "forward": v.forward}
            for v in records.views.values()
        },
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"


def from_json(text: str) -> tuple[int, Records]:
    body = json.loads(text)
    networks = {
        name: NetworkRecords(
            name, tuple(n["subnets"]), {k: tuple(v) for k, v in n["names"].items()}, dict(n["ptr"])
        )
        for name, n in body["networks"].items()
    }
    views = {
        name: View(
            name, v["netns"], tuple(v["networks"]), {k: tuple(a) for k, a in v["links"].items()},
            tuple(v["upstreams"]), bool(v["forward"]),
        )
        for name, v in body["views"].items()
    }
    return int(body["generation"]), Records.of(networks, views, body.get("containers", ()))


def same_records(a: str, b: str) -> bool:
    """Equal but for the generation: the pipeline republishes only real changes."""
    return bool(_without_generation(a) == _without_generation(b))


def _without_generation(text: str) -> Any:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict):
        body.pop("generation", None)
    return body


def hosts_file(records: Records) -> str:
    """hosts(5) lines for the host: every address with the names that lead to it."""
    head = "# Container names, generated by netctl (netctl dns hosts). Do not edit.\n"
    lines: dict[str, list[str]] = {}
    for net_name in records.views[HOST_VIEW].networks if HOST_VIEW in records.views else ():
        for name, addresses in records.networks[net_name].names.items():
            for a in addresses:
                known = lines.setdefault(a, [])
                if name not in known:
                    known.append(name)
    return head + "".join(f"{a}\t{' '.join(names)}\n" for a, names in lines.items())
