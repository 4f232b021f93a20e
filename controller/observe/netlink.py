"""Links, addresses and routes netctl owns, read over netlink.

In the host's namespace only links whose alias marks them as ours are read (and the
addresses on them). Inside a container's namespace (which netctl owns whole) every link
but `lo`, its global addresses and the default routes are read.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from typing import Any

from pyroute2 import IPRoute

from controller import names, resources
from controller.model import Kind, Resource

RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254


def host_links(ipr: IPRoute) -> tuple[list[Resource], dict[int, dict[str, Any]]]:
    """Owned bridges and veths in the host namespace, plus every host link by index
    (to resolve masters and to join veths with their container ends)."""
    links = {msg["index"]: msg for msg in ipr.get_links()}
    out: list[Resource] = []
    for msg in links.values():
        alias = msg.get("IFLA_IFALIAS")
        if not names.is_owned_alias(alias):
            continue
        kind = _kind(msg)
        name = msg.get("IFLA_IFNAME")
        up = bool(msg["flags"] & 1)
        if kind == "bridge":
            out.append(resources.bridge(name, msg.get("IFLA_MTU"), alias))
            out[-1] = _with(out[-1], up=up)
    return out, links


def hairpin_ports(ipr: IPRoute) -> set[int]:
    """Indexes of bridge ports in hairpin mode (one AF_BRIDGE dump)."""
    out = set()
    for msg in ipr.get_links(family=socket.AF_BRIDGE):
        info = msg.get("IFLA_PROTINFO")
        if info is not None and info.get("IFLA_BRPORT_MODE"):
            out.add(msg["index"])
    return out


def host_veths(
    links: dict[int, dict[str, Any]], peers: dict[int, tuple[str, str]], hairpin: set[int]
) -> list[Resource]:
    """Owned veths; `peers` maps a host ifindex to the (netns, ifname) of its other end."""
    out = []
    for index, msg in links.items():
        alias = msg.get("IFLA_IFALIAS")
        if not names.is_owned_alias(alias) or _kind(msg) != "veth":
            continue
        master_msg = links.get(msg.get("IFLA_MASTER") or -1)
        peer_ns, peer_if = peers.get(index, ("", ""))
        r = resources.veth(
            str(msg.get("IFLA_IFNAME")),
            master=master_msg.get("IFLA_IFNAME") if master_msg else None,
            mtu=int(msg.get("IFLA_MTU") or 0),
            alias=str(alias),
            peer_netns=peer_ns,
            peer_ifname=peer_if,
            hairpin=index in hairpin,
        )
        out.append(_with(r, up=bool(msg["flags"] & 1)))
    return out


def addresses(
    ipr: IPRoute, netns: str | None, ifnames: dict[int, str]
) -> list[Resource]:
    """Global addresses on the given links (link-local IPv6 is the kernel's, not ours)."""
    out = []
    for msg in ipr.get_addr():
        ifname = ifnames.get(msg["index"])
        if ifname is None or msg["scope"] == RT_SCOPE_LINK:
            continue
        cidr = f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"
        out.append(resources.address(netns, ifname, cidr))
    return out


def container(ipr: IPRoute, netns: str) -> tuple[list[Resource], dict[int, tuple[str, str]]]:
    """Everything in a container namespace, and its veth peers' host ifindexes."""
    links = {m["index"]: m for m in ipr.get_links() if m.get("IFLA_IFNAME") != "lo"}
    ifnames = {i: m.get("IFLA_IFNAME") for i, m in links.items()}
    peers: dict[int, tuple[str, str]] = {}
    out: list[Resource] = []
    for index, msg in links.items():
        host_index = msg.get("IFLA_LINK")
        ifname = ifnames[index]
        if host_index:
            peers[host_index] = (netns, ifname)
        r = resources.nslink(
            netns, ifname, mac=msg.get("IFLA_ADDRESS"), mtu=msg.get("IFLA_MTU"), host_veth=""
        )
        out.append(_with(r, up=bool(msg["flags"] & 1)))
    addrs = addresses(ipr, netns, ifnames)
    out.extend(addrs)
    out.extend(default_routes(ipr, netns, ifnames, addrs))
    return out, peers


def default_routes(
    ipr: IPRoute, netns: str, ifnames: dict[int, str], addrs: Collection[Resource]
) -> list[Resource]:
    out = []
    for msg in ipr.get_routes(table=RT_TABLE_MAIN):
        if msg["dst_len"] != 0 or msg.get("RTA_GATEWAY") is None:
            continue
        dev = ifnames.get(msg.get("RTA_OIF"))
        if dev is None:
            continue
        v6 = msg["family"] == socket.AF_INET6
        on_dev = [a for a in addrs if a.attrs["dev"] == dev and (":" in a.attrs["address"]) == v6]
        via = on_dev[0].attrs["address"] if on_dev else ""
        out.append(
            resources.route(
                netns, "default6" if v6 else "default",
                gateway=msg.get("RTA_GATEWAY"), dev=dev, via_addr=via,
            )
        )
    return out


def _kind(msg: dict[str, Any]) -> str | None:
    info = msg.get("IFLA_LINKINFO")
    return info.get("IFLA_INFO_KIND") if info else None


def _with(r: Resource, **attrs: Any) -> Resource:
    from dataclasses import replace

    return replace(r, attrs={**r.attrs, **attrs})


def owned_kind(r: Resource) -> bool:
    return r.kind in (Kind.BRIDGE, Kind.VETH)
