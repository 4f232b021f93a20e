"""Create, update and delete links, addresses, routes and namespaces over netlink."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from controller import failpoints
from controller.kernel import netns
from controller.kernel.netns import Sockets
from controller.model import Action, Kind, Op, Resource

IFA_F_NODAD = 0x02
DOOMED_GROUP = 0x6E6374  # "nct": owned links are moved here, then deleted in one message


class LinkIndex:
    """name -> ifindex per namespace, filled lazily (one RTM_GETLINK per miss)."""

    def __init__(self, sockets: Sockets) -> None:
        self.sockets = sockets
        self._cache: dict[tuple[str | None, str], int] = {}

    def get(self, ns: str | None, name: str) -> int:
        key = (ns, name)
        if key not in self._cache:
            msg = self.sockets.get(ns).link("get", ifname=name)[0]
            self._cache[key] = msg["index"]
        return self._cache[key]

    def forget_ns(self, ns: str) -> None:
        for key in [k for k in self._cache if k[0] == ns]:
            del self._cache[key]

    def forget(self, ns: str | None, name: str) -> None:
        self._cache.pop((ns, name), None)


class NetlinkBackend:
    def __init__(self, sockets: Sockets) -> None:
        self.sockets = sockets
        self.index = LinkIndex(sockets)

    def apply(self, action: Action) -> None:
        r = action.resource
        handler = getattr(self, f"_{action.op.value}_{r.kind.value}")
        handler(r, action)

    # ---------------------------------------------------------------- namespaces

    def _create_netns(self, r: Resource, _: Action) -> None:
        self.sockets.create(r.attrs["name"], ipv6=r.attrs.get("ipv6", True))

    def _update_netns(self, r: Resource, _: Action) -> None:
        netns.set_ipv6(r.attrs["name"], r.attrs.get("ipv6", True))

    def _delete_netns(self, r: Resource, _: Action) -> None:
        self.index.forget_ns(r.attrs["name"])
        self.sockets.delete(r.attrs["name"])

    # ---------------------------------------------------------------- links

    def _create_bridge(self, r: Resource, _: Action) -> None:
        ipr = self.sockets.get(None)
        try:
            ipr.link("add", ifname=r.attrs["name"], kind="bridge", mtu=r.attrs["mtu"], address=r.attrs["mac"])
        except NetlinkError as exc:
            # A crash between "add" and "set alias" leaves our bridge without its alias.
            existing = self._existing(None, r.attrs["name"])
            if exc.code != errno.EEXIST or existing is None or _kind(existing) != "bridge" or (
                existing.get("IFLA_IFALIAS") not in (None, "", r.attrs["alias"])
            ):
                raise
            ipr.link("set", index=existing["index"], mtu=r.attrs["mtu"], address=r.attrs["mac"])
        # No IFLA_IFALIAS at creation time: the kernel applies it only on "set".
        index = self.index.get(None, r.attrs["name"])
        ipr.link("set", index=index, ifalias=r.attrs["alias"], state="up")

    def _update_bridge(self, r: Resource, a: Action) -> None:
        self._set_link(None, r, a)

    def _delete_bridge(self, r: Resource, _: Action) -> None:
        self.sockets.get(None).link("del", index=self.index.get(None, r.attrs["name"]))
        self.index.forget(None, r.attrs["name"])

    def _create_veth(self, r: Resource, _: Action) -> None:
        ipr = self.sockets.get(None)
        a = r.attrs
        fd = os.open(netns.path(a["peer_netns"]), os.O_RDONLY)
        extra: dict[str, Any] = {}
        if a["master"]:
            extra["master"] = self.index.get(None, a["master"])
        try:
            ipr.link(
                "add", ifname=a["name"], kind="veth", mtu=a["mtu"], state="up",
                peer={"ifname": a["peer_ifname"], "net_ns_fd": fd, "mtu": a["mtu"]},
                **extra,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST or not self._half_made_veth(r):
                raise
            # Ours, from a run killed before it set the alias: finish it instead.
            ipr.link("set", index=self.index.get(None, a["name"]), mtu=a["mtu"], state="up", **extra)
        finally:
            os.close(fd)
        failpoints.hit("veth-created")
        index = self.index.get(None, a["name"])
        ipr.link("set", index=index, ifalias=a["alias"])
        if a.get("hairpin"):
            ipr.brport("set", index=index, mode=1)

    def _existing(self, ns: str | None, name: str) -> dict[str, Any] | None:
        try:
            msg: dict[str, Any] = self.sockets.get(ns).link("get", ifname=name)[0]
            return msg
        except NetlinkError:
            return None

    def _half_made_veth(self, r: Resource) -> bool:
        """A veth with our name and no alias is ours only if its other end is the interface
        we wanted, inside the container namespace that netctl itself owns."""
        a = r.attrs
        host = self._existing(None, a["name"])
        inner = self._existing(a["peer_netns"], a["peer_ifname"])
        return (
            host is not None and inner is not None and _kind(host) == "veth"
            and not host.get("IFLA_IFALIAS") and inner.get("IFLA_LINK") == host["index"]
        )

    def _update_veth(self, r: Resource, a: Action) -> None:
        self._set_link(None, r, a)
        if any(c.name in ("hairpin", "master") for c in a.changes) and r.attrs.get("master"):
            index = self.index.get(None, r.attrs["name"])
            self.sockets.get(None).brport("set", index=index, mode=1 if r.attrs.get("hairpin") else 0)

    def _delete_veth(self, r: Resource, _: Action) -> None:
        self.delete_links_at_once([r.attrs["name"]])

    def delete_links_at_once(self, names: list[str]) -> None:
        """Move the links into a group of our own, then delete the group in one message:
        the kernel then tears them down in one batch instead of one RCU wait per link."""
        ipr = self.sockets.get(None)
        moved = 0
        for name in names:
            try:  # by name: the kernel looks it up, saving a round trip per link
                ipr.link("set", ifname=name, group=DOOMED_GROUP)
                moved += 1
            except (NetlinkError, IndexError):
                pass  # already gone with its namespace
            self.index.forget(None, name)
        if moved:
            ipr.link("del", group=DOOMED_GROUP)

    def _create_nslink(self, r: Resource, a: Action) -> None:
        self._set_link(r.netns, r, a, everything=True)

    def _update_nslink(self, r: Resource, a: Action) -> None:
        self._set_link(r.netns, r, a)

    def _set_link(self, ns: str | None, r: Resource, a: Action, everything: bool = False) -> None:
        changed = {c.name for c in a.changes} if not everything else set(r.attrs)
        args: dict[str, Any] = {}
        if "mtu" in changed:
            args["mtu"] = r.attrs["mtu"]
        if "mac" in changed:
            args["address"] = r.attrs["mac"]
        if "alias" in changed:
            args["ifalias"] = r.attrs["alias"]
        if "master" in changed:
            master = r.attrs.get("master")
            args["master"] = self.index.get(None, master) if master else 0
        if "up" in changed:
            args["state"] = "up" if r.attrs["up"] else "down"
        if args:
            self.sockets.get(ns).link("set", index=self.index.get(ns, r.attrs["name"]), **args)

    # ---------------------------------------------------------------- addresses, routes

    def _create_address(self, r: Resource, _: Action) -> None:
        iface = ipaddress.ip_interface(r.attrs["address"])
        extra: dict[str, Any] = {}
        if iface.version == 6:
            extra["IFA_FLAGS"] = IFA_F_NODAD  # no duplicate detection delay: we own the subnet
        elif iface.network.prefixlen < 31:
            # `brd` as Docker's netlink library sets it: broadcasts to the subnet's address.
            extra["broadcast"] = str(iface.network.broadcast_address)
        try:
            self.sockets.get(r.netns).addr(
                "add", index=self.index.get(r.netns, r.attrs["dev"]),
                address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra,
            )
        except NetlinkError as exc:
            if exc.code != 17:  # EEXIST: already there (a retry after a crash)
                raise

    def _delete_address(self, r: Resource, _: Action) -> None:
        iface = ipaddress.ip_interface(r.attrs["address"])
        self.sockets.get(r.netns).addr(
            "del", index=self.index.get(r.netns, r.attrs["dev"]),
            address=str(iface.ip), prefixlen=iface.network.prefixlen,
        )

    def _create_route(self, r: Resource, _: Action) -> None:
        self._replace_route(r)

    def _update_route(self, r: Resource, _: Action) -> None:
        self._replace_route(r)

    def _replace_route(self, r: Resource) -> None:
        oif = self.index.get(r.netns, r.attrs["dev"])
        self.sockets.get(r.netns).route("replace", oif=oif, **_default_route(r))

    def _delete_route(self, r: Resource, _: Action) -> None:
        self.sockets.get(r.netns).route("del", **_default_route(r))


def handles(kind: Kind) -> bool:
    return kind in (Kind.NETNS, Kind.BRIDGE, Kind.VETH, Kind.NSLINK, Kind.ADDRESS, Kind.ROUTE)


__all__ = ["IPRoute", "NetlinkBackend", "Op", "handles"]


def _kind(msg: dict[str, Any]) -> str | None:
    info = msg.get("IFLA_LINKINFO")
    return info.get("IFLA_INFO_KIND") if info else None


def _default_route(r: Resource) -> dict[str, Any]:
    """The netlink fields of a default route resource (`default` or `default6`)."""
    v6 = r.attrs["dst"] == "default6"
    return {
        "family": socket.AF_INET6 if v6 else socket.AF_INET,
        "dst": "::/0" if v6 else "0.0.0.0/0",
        "gateway": r.attrs["gateway"],
    }
