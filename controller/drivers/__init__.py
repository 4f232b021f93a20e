"""Network drivers: pure functions from a network and its endpoints to kernel resources.

A driver knows how one kind of network maps to the kernel; the planner knows nothing about
drivers. Adding a driver means adding a module here and registering it below.
"""

from __future__ import annotations

import functools

from controller.drivers.base import DEFAULT_MTU, BaseDriver, Driver

__all__ = ["DEFAULT_MTU", "BaseDriver", "Driver", "get", "is_global", "known", "policy"]

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
