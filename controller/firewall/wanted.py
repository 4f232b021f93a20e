"""Target -> the firewall resources of the chosen backend, and the sysctls every backend
needs (pure). The backend's name is the only choice made here: how it renders is its own."""

from __future__ import annotations

from controller.firewall import iptables, nftables, render
from controller.model import Resource, Target

BACKENDS = ("iptables", "nftables")
DEFAULT = "iptables"


def firewall_resources(target: Target, backend: str = DEFAULT) -> list[Resource]:
    if backend == "nftables":
        rules = nftables.resources(target)
    else:
        rules = render.chains_and_jumps(target, iptables.rule_text)
    return [*rules, *render.sysctls(target)]
