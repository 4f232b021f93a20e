"""Apply firewall actions through the backends (one transaction per table that changes)."""

from __future__ import annotations

from collections.abc import Sequence

from controller.firewall import backend
from controller.model import Action, Kind


def apply_rules(actions: Sequence[Action]) -> int:
    """Every firewall action of the plan, all at once; return the processes spawned."""
    return backend.apply(actions)


def is_rule(kind: Kind) -> bool:
    return backend.is_rule(kind)
