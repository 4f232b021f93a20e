"""Apply firewall actions through the backend (one transaction per table that changes)."""

from __future__ import annotations

from collections.abc import Sequence

from controller.firewall import backend
from controller.model import Action, Kind


def apply_rules(actions: Sequence[Action]) -> int:
    """Chain and jump actions, all at once; return the processes spawned."""
    return backend.current().apply(actions)


def is_rule(kind: Kind) -> bool:
    return kind in (Kind.CHAIN, Kind.JUMP)
