"""Create, update and delete VXLAN devices and their FDB and neighbour entries (netlink)."""

from __future__ import annotations

import errno
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from controller.execute.netlink import LinkIndex
from controller.kernel.netns import Sockets
from controller.model import Action, Kind, Resource

NUD_PERMANENT = 0x80
_GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH)


def handles(kind: Kind) -> bool:
    return kind in (Kind.VXLAN, Kind.FDB, Kind.NEIGH)


class OverlayBackend:
    """Everything lives in the host namespace; `index` is shared with the netlink backend so
    that a bridge it just created is found under its new index."""

    def __init__(self, sockets: Sockets, index: LinkIndex) -> None:
        self.sockets = sockets
        self.index = index

    def apply(self, action: Action) -> None:
        getattr(self, f"_{action.op.value}_{action.resource.kind.value}")(action.resource, action)

    # ---------------------------------------------------------------- the device

    def _create_vxlan(self, r: Resource, _: Action) -> None:
        ipr = self.sockets.get(None)
        a = r.attrs
        ipr.link(
            "add", ifname=a["name"], kind="vxlan", vxlan_id=a["vni"], vxlan_port=a["port"],
            vxlan_learning=int(a["learning"]), vxlan_proxy=int(a["proxy"]), mtu=a["mtu"],
            master=self.index.get(None, a["master"]),
        )
        # The alias is applied only by "set" (as for bridges), then up.
        ipr.link("set", index=self.index.get(None, a["name"]), ifalias=a["alias"], state="up")

    def _update_vxlan(self, r: Resource, action: Action) -> None:
        changed = {c.name for c in action.changes}
        args: dict[str, Any] = {}
        if "mtu" in changed:
            args["mtu"] = r.attrs["mtu"]
        if "alias" in changed:
            args["ifalias"] = r.attrs["alias"]
        if "master" in changed:
            args["master"] = self.index.get(None, r.attrs["master"])
        if "up" in changed:
            args["state"] = "up" if r.attrs["up"] else "down"
        if args:
            self.sockets.get(None).link("set", index=self.index.get(None, r.attrs["name"]), **args)

    def _delete_vxlan(self, r: Resource, _: Action) -> None:
        self.sockets.get(None).link("del", index=self.index.get(None, r.attrs["name"]))
        self.index.forget(None, r.attrs["name"])

    # ---------------------------------------------------------------- entries

    def _create_fdb(self, r: Resource, _: Action) -> None:
        # append: a VXLAN FDB may hold several destinations per MAC; ours holds one.
        self._ignore(
            (errno.EEXIST,), self.sockets.get(None).fdb, "append",
            ifindex=self.index.get(None, r.attrs["dev"]), lladdr=r.attrs["mac"], dst=r.attrs["dst"],
        )

    def _delete_fdb(self, r: Resource, _: Action) -> None:
        index = self._index_or_none(r.attrs["dev"])
        if index is not None:
            self._ignore(_GONE, self.sockets.get(None).fdb, "del",
                         ifindex=index, lladdr=r.attrs["mac"], dst=r.attrs["dst"])

    def _create_neigh(self, r: Resource, _: Action) -> None:
        self.sockets.get(None).neigh(
            "replace", ifindex=self.index.get(None, r.attrs["dev"]), dst=r.attrs["ip"],
            lladdr=r.attrs["mac"], state=NUD_PERMANENT,
        )

    _update_neigh = _create_neigh

    def _delete_neigh(self, r: Resource, _: Action) -> None:
        index = self._index_or_none(r.attrs["dev"])
        if index is not None:
            self._ignore(_GONE, self.sockets.get(None).neigh, "del", ifindex=index, dst=r.attrs["ip"])

    # ---------------------------------------------------------------- helpers

    def _index_or_none(self, name: str) -> int | None:
        """A deleted entry's device may be gone already (and its entries with it)."""
        try:
            return self.index.get(None, name)
        except (NetlinkError, IndexError):
            return None

    @staticmethod
    def _ignore(codes: tuple[int, ...], call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except NetlinkError as exc:
            if exc.code not in codes:
                raise
