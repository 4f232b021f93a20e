"""Which namespaces a reconcile reads and plans (pure): the controller's scope.

A resource belongs to the host (None) or to one container's namespace; `Scope` picks the
containers whose target changed, drifted or must be read anyway, and `restrict` keeps the
host's resources and theirs, so that one change among a thousand containers reads one.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from controller import etcfiles
from controller.model import Kind, Resource


@dataclass(frozen=True)
class Scope:
    """What a controller reconcile reads and plans: the host's own resources (bridges, their
    addresses, firewall chains) always; of the containers only those named here, so that one
    changed object in a thousand does not re-read a thousand namespaces.

    `previous` is the target of the last successful reconcile (by key): containers whose target
    resources differ from it are in scope. `also` are read anyway (drift was seen there),
    `everything` reads every owned namespace (startup, resync), `skip` leaves containers alone
    (they failed and wait for their retry; the controller clears it when the input changes).
    """

    previous: Mapping[str, Resource] = field(default_factory=dict)
    also: frozenset[str] = frozenset()
    everything: bool = False
    skip: frozenset[str] = frozenset()

    def namespaces(self, wanted: Sequence[Resource], owned: Collection[str]) -> frozenset[str]:
        if self.everything:
            return frozenset(set(owned) - self.skip)
        current = {r.key: r for r in wanted}
        peers = veth_peers([*wanted, *self.previous.values()])
        changed = {
            owner_ns(r, peers)
            for key in current.keys() | self.previous.keys()
            if current.get(key) != self.previous.get(key)
            for r in (current.get(key), self.previous.get(key))
            if r is not None
        }
        names = {n for n in changed | self.also if n}
        return frozenset(names & set(owned) - self.skip)


def veth_peers(resources: Sequence[Resource]) -> dict[str, str]:
    """Host veth name -> its container's namespace, from target resources: an observed veth
    whose namespace was not read (or is gone) is still attributed to its container."""
    return {r.attrs["name"]: r.attrs["peer_netns"] for r in resources if r.kind is Kind.VETH}


def owner_ns(r: Resource, peers: Mapping[str, str]) -> str | None:
    """The container namespace a resource belongs to; None for the host's own resources,
    "" for a veth nobody claims (left to a full reconcile)."""
    if r.kind is Kind.NETNS:
        return str(r.attrs["name"])
    if r.kind is Kind.VETH:
        return str(r.attrs.get("peer_netns") or peers.get(r.attrs["name"], ""))
    if r.kind is Kind.FILE:
        folder = os.path.dirname(r.attrs["path"])
        return os.path.basename(folder) if os.path.dirname(folder) == etcfiles.ETC_NETNS else None
    return r.netns


def restrict(
    resources: Sequence[Resource], names: Collection[str], peers: Mapping[str, str]
) -> tuple[Resource, ...]:
    """The host's resources and those of the containers in `names`."""
    return tuple(r for r in resources if (o := owner_ns(r, peers)) is None or o in names)
