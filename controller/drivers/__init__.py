"""Network drivers: pure functions from a network and its endpoints to kernel resources.

A driver knows how one kind of network maps to the kernel; the planner knows nothing about
drivers. Adding a driver means adding a module here and registering it below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from controller.model import EndpointTarget, NetworkTarget, Resource


class Driver(Protocol):
    name: str

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        """Host-side objects of the network itself (a bridge and its gateway address...)."""
        ...

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        """Host-side objects of one endpoint (the veth and where it is plugged in)."""
        ...


BUILTIN = ("bridge", "host", "none", "overlay")


def known() -> tuple[str, ...]:
    """The drivers a manifest may name (the built-in ones; plugins join here)."""
    return BUILTIN


def unknown_driver_message(name: str) -> str:
    return (f"unknown network driver {name!r}: the built-in drivers are {', '.join(BUILTIN)}; "
            "no driver plugins were found")


def get(name: str) -> Driver:
    from controller.drivers import bridge, host, none, overlay

    registry: dict[str, Driver] = {
        "bridge": bridge.BridgeDriver(),
        "host": host.HostDriver(),
        "none": none.NoneDriver(),
        "overlay": overlay.OverlayDriver(),
    }
    try:
        return registry[name]
    except KeyError:
        # validation refuses unknown drivers: reaching here is a bug, not the user's input
        raise LookupError(unknown_driver_message(name)) from None
