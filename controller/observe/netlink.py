"""Links, addresses and routes netctl owns, read over netlink.

In the host's namespace only links whose alias marks them as ours are read (and the
addresses on them). Inside a container's namespace (which netctl owns whole) every link
but `lo`, its global addresses and the default routes are read.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from typing import Any

from controller import names, resources
from controller.kernel import rtdump
from controller.model import Kind, Resource

RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254


def host_links(found: rtdump.Dump) -> list[Resource]:
    """Owned bridges in the host namespace."""
    out = []
    for link in found.links.values():
        if names.is_owned_alias(link.alias) and link.kind == "bridge":
            out.append(_with(resources.bridge(link.name, link.mtu, link.alias, link.mac), up=link.up))
    return out


def host_veths(found: rtdump.Dump, peers: dict[int, tuple[str, str]]) -> list[Resource]:
    """Owned veths; `peers` maps a host ifindex to the (netns, ifname) of its other end."""
    out = []
    for index, link in found.links.items():
        if not names.is_owned_alias(link.alias) or link.kind != "veth":
            continue
        master = found.links.get(link.master)
        peer_ns, peer_if = peers.get(index, ("", ""))
        r = resources.veth(
            link.name,
            master=master.name if master else None,
            mtu=link.mtu,
            alias=link.alias,
            peer_netns=peer_ns,
            peer_ifname=peer_if,
            hairpin=link.hairpin,
        )
        out.append(_with(r, up=link.up))
    return out


def addresses(found: rtdump.Dump, netns: str | None, ifnames: dict[int, str]) -> list[Resource]:
    """Global addresses on the given links (link-local IPv6 is the kernel's, not ours)."""
    return [
        resources.address(netns, ifnames[a.index], f"{a.address}/{a.prefixlen}")
        for a in found.addresses
        if a.index in ifnames and a.scope != RT_SCOPE_LINK
    ]


def container(netns: str) -> tuple[list[Resource], dict[int, tuple[str, str]]]:
    """Everything in a container namespace, and its veth peers' host ifindexes."""
    found = rtdump.dump(netns)
    links = {i: link for i, link in found.links.items() if link.name != "lo"}
    peers: dict[int, tuple[str, str]] = {}
    out: list[Resource] = []
    for link in links.values():
        if link.link:
            peers[link.link] = (netns, link.name)
        r = resources.nslink(netns, link.name, mac=link.mac, mtu=link.mtu, host_veth="")
        out.append(_with(r, up=link.up))
    ifnames = {i: link.name for i, link in links.items()}
    addrs = addresses(found, netns, ifnames)
    out.extend(addrs)
    out.extend(default_routes(found.routes, netns, ifnames, addrs))
    return out, peers


def default_routes(
    routes: list[rtdump.Route], netns: str, ifnames: dict[int, str], addrs: Collection[Resource]
) -> list[Resource]:
    out = []
    for route in routes:
        if route.dst_len != 0 or not route.gateway:
            continue
        dev = ifnames.get(route.oif)
        if dev is None:
            continue
        v6 = route.family == socket.AF_INET6
        on_dev = [a for a in addrs if a.attrs["dev"] == dev and (":" in a.attrs["address"]) == v6]
        via = on_dev[0].attrs["address"] if on_dev else ""
        out.append(
            resources.route(
                netns, "default6" if v6 else "default", gateway=route.gateway, dev=dev, via_addr=via
            )
        )
    return out


def _with(r: Resource, **attrs: Any) -> Resource:
    from dataclasses import replace

    return replace(r, attrs={**r.attrs, **attrs})


def owned_kind(r: Resource) -> bool:
    return r.kind in (Kind.BRIDGE, Kind.VETH)
