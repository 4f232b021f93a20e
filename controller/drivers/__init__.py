"""Network drivers: pure functions from a network and its endpoints to kernel resources.

A driver knows how one kind of network maps to the kernel; the planner knows nothing about
drivers. Adding a driver means adding a module here and registering it below.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from controller import ipam, options
from controller.model import EndpointTarget, NetworkTarget, Resource

DEFAULT_MTU = 1500


class Driver(Protocol):
    """What the core asks about a kind of network; drivers answer, the core never names one."""

    name: str
    scope: str  # "local", or "global": its networks live in the cluster store
    addressed: bool  # its networks have subnets, its containers endpoints on them
    exclusive: bool  # one network of it; a container on it joins no other and publishes nothing
    host_namespace: bool  # its containers share the host's namespace (so: no links)
    firewalled: bool  # netctl's bridge firewall applies (ICC, isolation, masquerade, ports)
    routed: bool  # its gateway is the default route of its containers (and takes the first address)

    @property
    def shown_as(self) -> str:
        """In `network ls` and inspect (Docker's `none` is `null`)."""
        ...

    def device(self, network_id: str, opts: Mapping[str, str]) -> str | None:
        """The network's own device in the kernel (None: it has none)."""
        ...

    def mtu(self, opts: Mapping[str, str]) -> int: ...

    def pools(self, local: Collection[ipaddress.IPv4Network]) -> Iterable[ipaddress.IPv4Network]:
        """Where a network without a subnet gets one (`local`: the host's configured pools)."""
        ...

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        """Host-side objects of the network itself (a bridge and its gateway address...)."""
        ...

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        """Host-side objects of one endpoint (the veth and where it is plugged in)."""
        ...


class BaseDriver:
    """Defaults for a local driver without a device of its own (none, host)."""

    name = ""
    scope = "local"
    addressed = False
    exclusive = False
    host_namespace = False
    firewalled = False
    routed = False

    @property
    def shown_as(self) -> str:
        return self.name

    def device(self, network_id: str, opts: Mapping[str, str]) -> str | None:
        return None

    def mtu(self, opts: Mapping[str, str]) -> int:
        return int(opts.get(options.MTU, DEFAULT_MTU))

    def pools(self, local: Collection[ipaddress.IPv4Network]) -> Iterable[ipaddress.IPv4Network]:
        return local or ipam.default_local_pools()

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        return []

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        return []


BUILTIN = ("bridge", "host", "none", "overlay")


@functools.cache
def _registry() -> dict[str, Driver]:
    from controller.drivers import bridge, host, none, overlay

    return {
        "bridge": bridge.BridgeDriver(),
        "host": host.HostDriver(),
        "none": none.NoneDriver(),
        "overlay": overlay.OverlayDriver(),
    }


def known() -> tuple[str, ...]:
    """The drivers a manifest may name (the built-in ones; plugins join here)."""
    return BUILTIN


def unknown_driver_message(name: str) -> str:
    return (f"unknown network driver {name!r}: the built-in drivers are {', '.join(BUILTIN)}; "
            "no driver plugins were found")


def get(name: str) -> Driver:
    try:
        return _registry()[name]
    except KeyError:
        # validation refuses unknown drivers: reaching here is a bug, not the user's input
        raise LookupError(unknown_driver_message(name)) from None


def policy(name: str) -> Driver | None:
    """The driver, or None for a name validation will refuse."""
    return _registry().get(name)


def is_global(name: str) -> bool:
    d = policy(name)
    return d is not None and d.scope == "global"
