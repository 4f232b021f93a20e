"""Overlay objects netctl owns in the host namespace: VXLAN devices and their entries.

A VXLAN device is ours when its alias marks it (`netctl:<network-id>`). On it, only the
entries netctl writes are read: FDB entries of the device itself (NTF_SELF, with a remote
destination) and permanent neighbour entries. Entries the bridge learns on the port and
the kernel's own are not ours and never read.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pyroute2 import IPRoute

from controller import names, resources
from controller.model import Resource

NTF_SELF = 0x02
NUD_PERMANENT = 0x80


def observe(ipr: IPRoute, links: dict[int, dict[str, Any]]) -> list[Resource]:
    """Owned VXLAN devices with their FDB and neighbour entries. `links`: every host link
    by index (from observe.netlink.host_links)."""
    devices = vxlan_devices(links)
    out: list[Resource] = list(devices.values())
    out.extend(entries(ipr, {i: str(r.attrs["name"]) for i, r in devices.items()}))
    return out


def vxlan_devices(links: dict[int, dict[str, Any]]) -> dict[int, Resource]:
    out: dict[int, Resource] = {}
    for index, msg in links.items():
        alias = msg.get("IFLA_IFALIAS")
        info = msg.get("IFLA_LINKINFO")
        if not names.is_owned_alias(alias) or not info or info.get("IFLA_INFO_KIND") != "vxlan":
            continue
        data = info.get("IFLA_INFO_DATA") or {}
        master = links.get(msg.get("IFLA_MASTER") or -1)
        r = resources.vxlan(
            str(msg.get("IFLA_IFNAME")),
            vni=int(data.get("IFLA_VXLAN_ID") or 0),
            port=int(data.get("IFLA_VXLAN_PORT") or 0),
            master=str(master.get("IFLA_IFNAME")) if master else "",
            mtu=int(msg.get("IFLA_MTU") or 0),
            alias=str(alias),
        )
        out[index] = replace(r, attrs={
            **r.attrs,
            "learning": bool(data.get("IFLA_VXLAN_LEARNING")),
            "proxy": bool(data.get("IFLA_VXLAN_PROXY")),
            "up": bool(msg["flags"] & 1),
        })
    return out


def entries(ipr: IPRoute, devices: dict[int, str]) -> list[Resource]:
    """FDB and neighbour entries netctl writes on these VXLAN devices (ifindex -> name)."""
    if not devices:
        return []
    out: list[Resource] = []
    for msg in _dump(ipr.fdb("dump")):
        dev = devices.get(msg["ifindex"])
        dst = msg.get("NDA_DST")
        if dev is None or dst is None or not msg["flags"] & NTF_SELF:
            continue
        out.append(resources.fdb(dev, str(msg.get("NDA_LLADDR")), str(dst)))
    for msg in _dump(ipr.get_neighbours(family=socket.AF_INET)):
        dev = devices.get(msg["ifindex"])
        if dev is None or not msg["state"] & NUD_PERMANENT or msg.get("NDA_LLADDR") is None:
            continue
        out.append(resources.neigh(dev, str(msg.get("NDA_DST")), str(msg.get("NDA_LLADDR"))))
    return out


def _dump(messages: Iterable[Any]) -> list[dict[str, Any]]:
    return list(messages)
