"""Apply firewall actions: one `iptables-restore --noflush` per table that changes; sysctls."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import structlog

from controller.firewall import iptables
from controller.model import Action, Kind, Op
from controller.names import sysctl_path as proc_path

log = structlog.get_logger("netctl.firewall")

RESTORE = {"ipv4": "iptables-restore", "ipv6": "ip6tables-restore"}
POLICY = {"net.ipv4.ip_forward": "iptables", "net.ipv6.conf.all.forwarding": "ip6tables"}


def apply_rules(actions: Sequence[Action]) -> int:
    """Group by family and table, restore each group atomically; return processes spawned."""
    groups: dict[tuple[str, str], list[Action]] = {}
    for a in actions:
        attrs = a.resource.attrs
        groups.setdefault((attrs["family"], attrs["table"]), []).append(a)
    spawned = 0
    # raw and nat before filter: nothing depends on it, and filter's DROP comes last.
    def order(item: tuple[tuple[str, str], list[Action]]) -> tuple[str, int]:
        (family, table), _ = item
        return family, iptables.TABLES.index(table)

    for (family, table), group in sorted(groups.items(), key=order):
        payload = iptables.restore_input(table, group)
        result = subprocess.run(
            [RESTORE[family], "--noflush"], input=payload, capture_output=True, text=True
        )
        spawned += 1
        if result.returncode != 0:
            raise RuntimeError(f"{RESTORE[family]} ({table}): {result.stderr.strip()}\ninput:\n{payload}")
        log.info("restored", family=family, table=table, lines=payload.count("\n") - 2)
    return spawned


def apply_sysctl(action: Action) -> None:
    """Set a sysctl. Deleting one changes nothing: the value stays, as Docker leaves it."""
    if action.op is Op.DELETE:
        return
    name = action.resource.attrs["name"]
    old = next((c.old for c in action.changes if c.name == "value"), None)
    with open(proc_path(name), "w", encoding="ascii") as f:
        f.write(action.resource.attrs["value"])
    if name in POLICY and old == "0":
        # Docker's rule: whoever turns forwarding on makes FORWARD drop by default, so that
        # only what netctl's chains (or the user's) accept is forwarded.
        subprocess.run([POLICY[name], "-P", "FORWARD", "DROP"], check=True, capture_output=True)


def is_rule(kind: Kind) -> bool:
    return kind in (Kind.CHAIN, Kind.JUMP)
