"""Set sysctls (their own resource kind: forwarding, route_localnet, bridge netfilter)."""

from __future__ import annotations

from controller.firewall import backend
from controller.model import Action, Op
from controller.names import sysctl_path

FORWARDING = {"net.ipv4.ip_forward": "ipv4", "net.ipv6.conf.all.forwarding": "ipv6"}


def apply_sysctl(action: Action) -> None:
    """Set a sysctl. Deleting one changes nothing: the value stays, as Docker leaves it."""
    if action.op is Op.DELETE:
        return
    name = action.resource.attrs["name"]
    old = next((c.old for c in action.changes if c.name == "value"), None)
    with open(sysctl_path(name), "w", encoding="ascii") as f:
        f.write(action.resource.attrs["value"])
    if name in FORWARDING and old == "0":
        # Docker's rule: whoever turns forwarding on makes FORWARD drop by default, so that
        # only what netctl's chains (or the user's) accept is forwarded.
        backend.forwarding_enabled(FORWARDING[name])
