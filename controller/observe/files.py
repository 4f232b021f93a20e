"""Per-container files netctl owns (/etc/netns/<container>/hosts and resolv.conf)."""

from __future__ import annotations

from collections.abc import Collection

from controller import etcfiles, resources
from controller.model import Resource


def container_files(containers: Collection[str]) -> list[Resource]:
    out = []
    for name in containers:
        for path in (etcfiles.hosts_path(name), etcfiles.resolv_path(name)):
            try:
                with open(path, encoding="utf-8") as f:
                    out.append(resources.file(path, f.read()))
            except FileNotFoundError:
                continue
    return out
