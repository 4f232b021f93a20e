"""The host's own configuration: Docker daemon.json's keys for the default bridge and the
default address pools, in /etc/netctl/daemon.json (`--config`, `$NETCTL_CONFIG`).

No file: netctl's defaults (netctl0 on 172.17.0.0/16, pools 172.17-31/16 then 192.168/20).
The keys fold into the shipped `bridge` manifest, so a change is an ordinary planned change
(`netctl plan` shows it, apply converges it); an invalid file is an error with its line.
"""

from __future__ import annotations

import copy
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import load, options
from controller.errors import ManifestError, Problem
from controller.model import Document

DEFAULT_PATH = "/etc/netctl/daemon.json"
ENV = "NETCTL_CONFIG"
HOST_WIDE = {"default-address-pools", "bridge-accept-fwmark"}  # keys that do not shape the default bridge



@dataclass(frozen=True)
class HostConfig:
    source: str = ""  # the file, "" when there is none
    values: Mapping[str, Any] | None = None

    @property
    def pools(self) -> tuple[ipaddress.IPv4Network, ...]:
        """default-address-pools cut into subnets, in order ((): netctl's defaults)."""
        out: list[ipaddress.IPv4Network] = []
        for pool in (self.values or {}).get("default-address-pools", ()):
            base = ipaddress.ip_network(pool["base"])
            if isinstance(base, ipaddress.IPv4Network) and pool["size"] >= base.prefixlen:
                out.extend(base.subnets(new_prefix=pool["size"]))
        return tuple(out)

    @property
    def accept_fwmark(self) -> str:
        return str((self.values or {}).get("bridge-accept-fwmark", ""))


def path() -> str:
    return os.environ.get(ENV) or DEFAULT_PATH


def read(file: str | None = None) -> HostConfig:
    file = file or path()
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if file != DEFAULT_PATH:  # asked for by name: it must be there
            raise ManifestError([Problem(file, 0, "", "configuration file not found")]) from None
        return HostConfig()
    except OSError as exc:
        raise ManifestError([Problem(file, 0, "", f"cannot read: {exc.strerror}")]) from None
    doc = load.parse_config(text, file, "HostConfig")
    config = HostConfig(file, dict(doc.body))
    _check(config, doc)
    return config


def _check(config: HostConfig, doc: Document) -> None:
    values = config.values or {}
    problems = []
    if "fixed-cidr" in values:
        if "bip" not in values:
            problems.append(load.problem_at(doc, "fixed-cidr", "fixed-cidr needs bip (its subnet)"))
        elif not ipaddress.ip_network(values["fixed-cidr"]).subnet_of(
                ipaddress.ip_interface(values["bip"]).network):  # type: ignore[arg-type]
            problems.append(load.problem_at(doc, "fixed-cidr", f"{values['fixed-cidr']} is not inside bip "
                                            f"{values['bip']}"))
    for i, pool in enumerate(values.get("default-address-pools", ())):
        base = ipaddress.ip_network(pool["base"])
        if base.version != 4 or pool["size"] < base.prefixlen:
            problems.append(load.problem_at(
                doc, f"default-address-pools[{i}]",
                f"expected an IPv4 base and a size of at least its prefix /{base.prefixlen}"))
    if problems:
        raise ManifestError(problems)


def builtin(documents: Sequence[Document], config: HostConfig) -> list[Document]:
    """The shipped default networks with the configuration's keys folded into `bridge`."""
    values = config.values or {}
    if not values.keys() - HOST_WIDE:
        return list(documents)
    out = []
    for doc in documents:
        if doc.kind == "Network" and doc.name == "bridge":
            body = copy.deepcopy(dict(doc.body))
            spec = body.setdefault("spec", {})
            opts = spec.setdefault("options", {})
            if "bip" in values:
                bip = ipaddress.ip_interface(values["bip"])
                entry: dict[str, str] = {"subnet": str(bip.network), "gateway": str(bip.ip)}
                if "fixed-cidr" in values:
                    entry["ipRange"] = values["fixed-cidr"]
                spec["ipam"] = {"driver": "default", "config": [entry]}
            for key, option in (("icc", options.ICC), ("ip-masq", options.MASQUERADE)):
                if key in values:
                    opts[option] = "true" if values[key] else "false"
            if "ip" in values:
                opts[options.HOST_BINDING_IPV4] = values["ip"]
            if "mtu" in values:
                opts[options.MTU] = str(values["mtu"])
            doc = Document(doc.kind, doc.name, body, doc.source, doc.lines)
        out.append(doc)
    return out


_cache: dict[str, tuple[tuple[int, int], HostConfig]] = {}


def current() -> HostConfig:
    """The configuration as the file is now (read again only when it changed)."""
    file = path()
    try:
        st = os.stat(file)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, -1)
    cached = _cache.get(file)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    config = read(file)
    _cache[file] = (stamp, config)
    return config
