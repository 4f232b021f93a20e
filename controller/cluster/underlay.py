"""This host on the underlay: its advertise address, the link that holds it, and whether an
overlay's MTU fits that link (shared by the session, the agent and preflight)."""

from __future__ import annotations

import ipaddress
import socket

from controller import drivers, options
from controller.drivers import overlay
from controller.errors import UserError
from controller.kernel.netns import Sockets
from controller.model import NetworkSpec


def underlay_of(sockets: Sockets, vtep: str) -> tuple[str, int] | None:
    """(interface, MTU) of the link holding `vtep` in the host namespace."""
    root = sockets.get(None)
    for msg in root.get_addr(family=socket.AF_INET):
        if msg.get("IFA_ADDRESS") == vtep or msg.get("IFA_LOCAL") == vtep:
            link = root.get_links(msg["index"])[0]
            return str(link.get("IFLA_IFNAME")), int(link.get("IFLA_MTU") or 0)
    return None


def resolve_advertise(sockets: Sockets, advertise: str) -> str:
    """--advertise-address as an IPv4 address; an interface name gives its first one."""
    try:
        return str(ipaddress.IPv4Address(advertise))
    except ValueError:
        pass
    root = sockets.get(None)
    found = root.link_lookup(ifname=advertise)
    if found:
        for msg in root.get_addr(family=socket.AF_INET, index=found[0]):
            return str(msg.get("IFA_ADDRESS"))
    raise UserError(f"--advertise-address {advertise}: neither an IPv4 address nor an interface with one")


def check_mtu(n: NetworkSpec, vtep: str, underlay: tuple[str, int] | None) -> None:
    """Preflight: the classic silent failure. VXLAN adds 50 bytes; if the underlay cannot
    carry them, small packets (ping) pass and full-size ones (TCP data) vanish."""
    if underlay is None:
        raise UserError(
            f"--advertise-address {vtep} is not an address of this host: VXLAN packets would "
            "leave from another address and peers would not reach this host back. Use this "
            "host's address on the underlay network"
        )
    ifname, underlay_mtu = underlay
    mtu = drivers.get(n.driver).mtu(n.options)
    if mtu + overlay.VXLAN_OVERHEAD > underlay_mtu:
        raise UserError(
            f"network {n.name}: overlay MTU {mtu} + {overlay.VXLAN_OVERHEAD} bytes of VXLAN "
            f"headers = {mtu + overlay.VXLAN_OVERHEAD} > {underlay_mtu}, the MTU of {ifname} "
            f"(the underlay, holding {vtep}): packets above {underlay_mtu - overlay.VXLAN_OVERHEAD} "
            f"bytes would be dropped silently (pings pass, TCP stalls). Set "
            f"{options.MTU} to {underlay_mtu - overlay.VXLAN_OVERHEAD} or less, or raise {ifname}'s MTU"
        )
