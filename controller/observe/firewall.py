"""Our firewall chains and jumps (through the backend), and the sysctls the target sets."""

from __future__ import annotations

from collections.abc import Collection

from controller import names
from controller.firewall import backend, render
from controller.model import Resource


def rules() -> list[Resource]:
    """netctl's firewall, read by the backend in use (and by the one a migration leaves)."""
    return [r for b in backend.read() for r in b.observe()]


def sysctls(wanted: Collection[str]) -> list[Resource]:
    """Only the sysctls the target sets: others are the host's, never ours to report."""
    out = []
    for name in wanted:
        try:
            with open(names.sysctl_path(name), encoding="ascii") as f:
                out.append(render.sysctl(name, f.read().strip(), parent=_parent(name)))
        except FileNotFoundError:
            continue  # e.g. the bridge of a per-bridge sysctl does not exist yet
    return out


def _parent(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"]:
        return f"link:/{parts[3].replace('/', '.')}"
    return None
