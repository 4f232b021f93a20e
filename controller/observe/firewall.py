"""Our iptables chains and jumps (one `iptables-save` per family), and the sysctls we want."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Collection

from controller import names
from controller.firewall import iptables, render
from controller.model import Resource

SAVE = {"ipv4": "iptables-save", "ipv6": "ip6tables-save"}


def rules() -> list[Resource]:
    out: list[Resource] = []
    for family, command in SAVE.items():
        if shutil.which(command) is None:
            continue
        text = subprocess.run([command], capture_output=True, text=True, check=True).stdout
        out.extend(iptables.owned_resources(family, iptables.parse_save(text)))
    return out


def sysctls(names: Collection[str]) -> list[Resource]:
    """Only the sysctls the target sets: others are the host's, never ours to report."""
    out = []
    for name in names:
        try:
            with open(proc_path(name), encoding="ascii") as f:
                out.append(render.sysctl(name, f.read().strip(), parent=_parent(name)))
        except FileNotFoundError:
            continue  # e.g. the bridge of a per-bridge sysctl does not exist yet
    return out


def proc_path(name: str) -> str:
    return names.sysctl_path(name)


def _parent(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"]:
        return f"link:/{parts[3].replace('/', '.')}"
    return None
