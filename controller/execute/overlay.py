"""Create, update and delete overlay namespaces, their ports and their VXLAN entries (netlink).

An overlay resource is one namespace holding a bridge and a VXLAN device. The VXLAN device
is created in the host's namespace and moved in: a VXLAN device keeps its UDP socket in
the namespace it was created in, which is where the underlay is. Creating is "ensure": it
completes whatever a crash left half made.
"""

from __future__ import annotations

import errno
import os
import zlib
from contextlib import suppress
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from controller.execute.netlink import LinkIndex
from controller.kernel import netns
from controller.kernel.netns import OVERLAY_NS_DIR, Sockets, ns_path
from controller.model import Action, Kind, Resource

NUD_PERMANENT = 0x80
_GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH)
# Ports get interface indexes far above what the host's namespace hands out: a container
# end names its peer by index only, and netctl's veth join (observe) must never mistake a
# port in an overlay namespace for a host veth with the same small index.
PORT_INDEX_BASE = 1 << 24
PORT_INDEX_SPAN = 1 << 20


def handles(kind: Kind) -> bool:
    return kind in (Kind.VXLAN, Kind.OVPORT, Kind.FDB, Kind.NEIGH)


def port_index(name: str, attempt: int) -> int:
    return PORT_INDEX_BASE + (zlib.crc32(name.encode()) + attempt) % PORT_INDEX_SPAN


class OverlayBackend:
    """`index` is shared with the netlink backend (its cache is keyed by namespace)."""

    def __init__(self, sockets: Sockets, index: LinkIndex) -> None:
        self.sockets = sockets
        self.index = index

    def apply(self, action: Action) -> None:
        getattr(self, f"_{action.op.value}_{action.resource.kind.value}")(action.resource, action)

    # ---------------------------------------------------------------- the namespace

    def _create_vxlan(self, r: Resource, _: Action) -> None:
        path = ns_path(r.attrs["netns"])
        if os.path.exists(path):  # a leftover of a crash before the mount: start over
            self.sockets.delete(path)
        os.makedirs(OVERLAY_NS_DIR, exist_ok=True)
        self.sockets.create(path)
        self._quiet_bridge_netfilter(path)
        self._ensure(r)

    def _update_vxlan(self, r: Resource, _: Action) -> None:
        self._ensure(r)

    def _delete_vxlan(self, r: Resource, _: Action) -> None:
        path = ns_path(r.attrs["netns"])
        with suppress(OSError, NetlinkError):
            ipr = self.sockets.get(path)
            for name in (r.attrs["vxlan"], r.attrs["bridge"]):  # now, not when the ns is freed
                if name:
                    self._ignore(_GONE, ipr.link, "del", ifname=name)
        self.index.forget_ns(path)
        self.sockets.delete(path)

    def _ensure(self, r: Resource) -> None:
        a = r.attrs
        path = ns_path(a["netns"])
        ipr = self.sockets.get(path)
        if not ipr.link_lookup(ifname=a["bridge"]):
            ipr.link("add", ifname=a["bridge"], kind="bridge", mtu=a["mtu"], address=a["mac"])
        self.index.forget_ns(path)
        bridge = self.index.get(path, a["bridge"])
        if not ipr.link_lookup(ifname=a["vxlan"]):
            root = self.sockets.get(None)
            self._ignore(_GONE, root.link, "del", ifname=a["vxlan"])  # left by a crash
            root.link(
                "add", ifname=a["vxlan"], kind="vxlan", vxlan_id=a["vni"], vxlan_port=a["port"],
                vxlan_learning=int(a["learning"]), vxlan_proxy=int(a["proxy"]), mtu=a["mtu"],
            )
            fd = os.open(path, os.O_RDONLY)
            try:
                root.link("set", index=root.link_lookup(ifname=a["vxlan"])[0], net_ns_fd=fd)
            finally:
                os.close(fd)
        vxlan = self.index.get(path, a["vxlan"])
        ipr.link("set", index=bridge, mtu=a["mtu"], address=a["mac"], state="up")
        ipr.link("set", index=vxlan, mtu=a["mtu"], master=bridge, ifalias=a["alias"], state="up")

    @staticmethod
    def _quiet_bridge_netfilter(path: str) -> None:
        """No iptables in an overlay namespace: don't make its bridge run frames through them."""
        with netns.entered(path), suppress(OSError), open(
            "/proc/sys/net/bridge/bridge-nf-call-iptables", "w"
        ) as f:
            f.write("0")

    # ---------------------------------------------------------------- ports

    def _create_ovport(self, r: Resource, _: Action) -> None:
        a = r.attrs
        path = ns_path(a["overlay"])
        ipr = self.sockets.get(path)
        master = self.index.get(path, a["master"])
        fd = os.open(netns.path(a["peer_netns"]), os.O_RDONLY)
        try:
            for attempt in range(16):
                try:
                    ipr.link(
                        "add", ifname=a["name"], index=port_index(a["name"], attempt), kind="veth",
                        mtu=a["mtu"], master=master, state="up",
                        peer={"ifname": a["peer_ifname"], "net_ns_fd": fd, "mtu": a["mtu"]},
                    )
                    break
                except NetlinkError as exc:
                    if exc.code not in (errno.EBUSY, errno.EEXIST) or ipr.link_lookup(ifname=a["name"]):
                        raise
        finally:
            os.close(fd)
        ipr.link("set", index=self.index.get(path, a["name"]), ifalias=a["alias"])

    def _update_ovport(self, r: Resource, action: Action) -> None:
        path = ns_path(r.attrs["overlay"])
        changed = {c.name for c in action.changes}
        args: dict[str, Any] = {}
        if "mtu" in changed:
            args["mtu"] = r.attrs["mtu"]
        if "alias" in changed:
            args["ifalias"] = r.attrs["alias"]
        if "master" in changed:
            args["master"] = self.index.get(path, r.attrs["master"])
        if "up" in changed:
            args["state"] = "up" if r.attrs["up"] else "down"
        if args:
            self.sockets.get(path).link("set", index=self.index.get(path, r.attrs["name"]), **args)

    def _delete_ovport(self, r: Resource, _: Action) -> None:
        path = ns_path(r.attrs["overlay"])
        if not os.path.exists(path):
            return  # the namespace went first, and its ports with it
        self._ignore(_GONE, self.sockets.get(path).link, "del", ifname=r.attrs["name"])
        self.index.forget(path, r.attrs["name"])

    # ---------------------------------------------------------------- entries

    def _create_fdb(self, r: Resource, _: Action) -> None:
        path = ns_path(r.attrs["overlay"])
        self._ignore(
            (errno.EEXIST,), self.sockets.get(path).fdb, "append",
            ifindex=self.index.get(path, r.attrs["dev"]), lladdr=r.attrs["mac"], dst=r.attrs["dst"],
        )

    def _delete_fdb(self, r: Resource, _: Action) -> None:
        found = self._device(r)
        if found is not None:
            ipr, index = found
            self._ignore(_GONE, ipr.fdb, "del", ifindex=index, lladdr=r.attrs["mac"], dst=r.attrs["dst"])

    def _create_neigh(self, r: Resource, _: Action) -> None:
        path = ns_path(r.attrs["overlay"])
        self.sockets.get(path).neigh(
            "replace", ifindex=self.index.get(path, r.attrs["dev"]), dst=r.attrs["ip"],
            lladdr=r.attrs["mac"], state=NUD_PERMANENT,
        )

    _update_neigh = _create_neigh

    def _delete_neigh(self, r: Resource, _: Action) -> None:
        found = self._device(r)
        if found is not None:
            ipr, index = found
            self._ignore(_GONE, ipr.neigh, "del", ifindex=index, dst=r.attrs["ip"])

    # ---------------------------------------------------------------- helpers

    def _device(self, r: Resource) -> tuple[Any, int] | None:
        """The socket and VXLAN device of an entry being deleted; None when the device (or
        its namespace) is gone already, and its entries with it."""
        path = ns_path(r.attrs["overlay"])
        if not os.path.exists(path):
            return None
        try:
            return self.sockets.get(path), self.index.get(path, r.attrs["dev"])
        except (NetlinkError, IndexError, OSError):
            return None

    @staticmethod
    def _ignore(codes: tuple[int, ...], call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except NetlinkError as exc:
            if exc.code not in codes:
                raise
