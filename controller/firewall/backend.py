"""The firewall backend, chosen once: how netctl's chains and jumps are read from and written
to the kernel. observe/ and execute/ talk to `current()`, never to a tool by name.

iptables (the only backend so far): one `iptables-save` per family to read, one
`iptables-restore --noflush` per table that changes to write (firewall/iptables.py makes
the text). A backend also owns the FORWARD policy that turning on forwarding implies.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from typing import Protocol

import structlog

from controller.firewall import iptables
from controller.firewall.rules import Rule
from controller.model import Action, Resource

log = structlog.get_logger("netctl.firewall")


class Backend(Protocol):
    name: str

    def rule_text(self, rule: Rule) -> str:
        """A rule as this backend writes it and reads it back."""
        ...

    def observe(self) -> list[Resource]:
        """netctl's chains (with their rules) and jumps, as the kernel has them."""
        ...

    def apply(self, actions: Sequence[Action]) -> int:
        """Chain and jump actions, one transaction per table; the processes spawned."""
        ...

    def forward_policy_drop(self, family: str) -> None:
        """Forwarding was just turned on: forward nothing but what the chains accept."""
        ...


SAVE = {"ipv4": "iptables-save", "ipv6": "ip6tables-save"}
RESTORE = {"ipv4": "iptables-restore", "ipv6": "ip6tables-restore"}
POLICY = {"ipv4": "iptables", "ipv6": "ip6tables"}


class Iptables:
    name = "iptables"

    def rule_text(self, rule: Rule) -> str:
        return iptables.rule_text(rule)

    def observe(self) -> list[Resource]:
        out: list[Resource] = []
        for family, command in SAVE.items():
            if shutil.which(command) is None:
                continue
            text = subprocess.run([command], capture_output=True, text=True, check=True).stdout
            out.extend(iptables.owned_resources(family, iptables.parse_save(text)))
        return out

    def apply(self, actions: Sequence[Action]) -> int:
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
                raise RuntimeError(
                    f"{RESTORE[family]} ({table}): {result.stderr.strip()}\ninput:\n{payload}"
                )
            log.info("restored", family=family, table=table, lines=payload.count("\n") - 2)
        return spawned

    def forward_policy_drop(self, family: str) -> None:
        subprocess.run([POLICY[family], "-P", "FORWARD", "DROP"], check=True, capture_output=True)


_CURRENT: Backend = Iptables()


def current() -> Backend:
    return _CURRENT
