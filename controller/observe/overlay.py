"""Overlay networks as the kernel has them: their namespaces and what is inside.

Every namespace under the overlay folder is netctl's (it made them; nothing else writes
there). Inside one: the bridge, the VXLAN device carrying netctl's alias, the ports (veths
with netctl's alias, whose alias also names their container end), the VXLAN device's own
FDB entries (NTF_SELF, with a remote destination) and its permanent neighbour entries.
Entries the bridge learns and the kernel's own are not ours and never read.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from controller import names, resources
from controller.drivers import overlay as driver
from controller.kernel.netns import OVERLAY_NS_DIR, Sockets, ns_path
from controller.model import Resource

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NTF_SELF = 0x02
NUD_PERMANENT = 0x80


def namespaces() -> list[str]:
    try:
        return sorted(os.listdir(OVERLAY_NS_DIR))
    except FileNotFoundError:
        return []


def observe(sockets: Sockets) -> list[Resource]:
    present = namespaces()
    # A socket left open in a namespace another process deleted would keep that namespace,
    # and its VXLAN device with its VNI, alive (a long-running controller's sockets outlive
    # one command): let go of those first.
    for path in sorted(_opened - {ns_path(n) for n in present}):
        sockets.forget(path)
        _opened.discard(path)
    out: list[Resource] = []
    for name in present:
        try:
            ipr = sockets.get(ns_path(name))
        except OSError:
            continue  # a file left by a crash before its mount: create() replaces it
        _opened.add(ns_path(name))
        out.extend(inside(ipr, name))
    return out


_opened: set[str] = set()  # overlay namespaces this process holds sockets in


def _kind(msg: dict[str, Any]) -> str | None:
    info = msg.get("IFLA_LINKINFO")
    return info.get("IFLA_INFO_KIND") if info else None


def inside(ipr: IPRoute, name: str) -> list[Resource]:
    """The overlay resource of namespace `name`, its ports and its entries."""
    links = {m["index"]: m for m in ipr.get_links()}
    vx = next((m for m in links.values()
               if _kind(m) == "vxlan" and names.is_owned_alias(m.get("IFLA_IFALIAS"))), None)
    br = next((m for m in links.values() if _kind(m) == "bridge"), None)
    out = [_overlay(name, vx, br)]
    for _, msg in sorted(links.items()):
        alias = msg.get("IFLA_IFALIAS")
        if _kind(msg) != "veth" or not names.is_owned_alias(alias):
            continue
        master = links.get(msg.get("IFLA_MASTER") or -1)
        peer_netns, peer_ifname = driver.port_peer(str(alias))
        r = resources.ovport(
            str(msg.get("IFLA_IFNAME")), overlay=name,
            master=str(master.get("IFLA_IFNAME")) if master else "",
            mtu=int(msg.get("IFLA_MTU") or 0), alias=str(alias),
            peer_netns=peer_netns, peer_ifname=peer_ifname,
        )
        out.append(_with(r, up=bool(msg["flags"] & 1)))
    if vx is not None:
        out.extend(entries(ipr, name, vx["index"], str(vx.get("IFLA_IFNAME"))))
    return out


def _overlay(name: str, vx: dict[str, Any] | None, br: dict[str, Any] | None) -> Resource:
    """Both devices, the VXLAN one enslaved to the bridge, both up: what `create` makes.
    Anything missing shows as an empty name, which the plan repairs by replacement."""
    data = (vx.get("IFLA_LINKINFO") or {}).get("IFLA_INFO_DATA") or {} if vx else {}
    enslaved = vx is not None and br is not None and vx.get("IFLA_MASTER") == br["index"]
    mtus = {int(m.get("IFLA_MTU") or 0) for m in (vx, br) if m is not None}
    r = resources.overlay(
        name,
        bridge=str(br.get("IFLA_IFNAME")) if br is not None and enslaved else "",
        vxlan=str(vx.get("IFLA_IFNAME")) if vx is not None else "",
        vni=int(data.get("IFLA_VXLAN_ID") or 0),
        port=int(data.get("IFLA_VXLAN_PORT") or 0),
        mtu=mtus.pop() if len(mtus) == 1 else 0,
        alias=str(vx.get("IFLA_IFALIAS")) if vx is not None else "",
        mac=str(br.get("IFLA_ADDRESS")) if br is not None else "",
    )
    return _with(
        r,
        learning=bool(data.get("IFLA_VXLAN_LEARNING")),
        proxy=bool(data.get("IFLA_VXLAN_PROXY")),
        up=bool(vx and br and vx["flags"] & 1 and br["flags"] & 1),
    )


def entries(ipr: IPRoute, name: str, index: int, dev: str) -> list[Resource]:
    """FDB and neighbour entries netctl writes on VXLAN device `dev` (ifindex `index`)."""
    out: list[Resource] = []
    for msg in ipr.fdb("dump"):
        dst = msg.get("NDA_DST")
        if msg["ifindex"] != index or dst is None or not msg["flags"] & NTF_SELF:
            continue
        out.append(resources.fdb(name, dev, str(msg.get("NDA_LLADDR")), str(dst)))
    for msg in ipr.get_neighbours(family=socket.AF_INET):
        if msg["ifindex"] != index or not msg["state"] & NUD_PERMANENT or msg.get("NDA_LLADDR") is None:
            continue
        out.append(resources.neigh(name, dev, str(msg.get("NDA_DST")), str(msg.get("NDA_LLADDR"))))
    return out


def _with(r: Resource, **attrs: Any) -> Resource:
    from dataclasses import replace

    return replace(r, attrs={**r.attrs, **attrs})
