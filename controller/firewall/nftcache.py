"""nftables' table as netctl last knew it, and when: a file in the state dir.

The kernel adds one to the ruleset's generation at every nftables commit, whoever makes it;
while the generation is the one recorded here, the table is exactly what is recorded, and
the backend need not read 1,000 ports' elements back. The file is JSON lines: a snapshot
(boot, namespace cookie and generation, every resource's attrs), then one line per netctl
transaction since (its generation, the attrs it added, the keys it removed), so that
recording one more published port costs what it changed. Anything unexpected in the file
(another boot, a torn line) makes it worthless, never wrong: the backend reads the kernel.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from controller.firewall import nftables
from controller.model import Resource

Generation = tuple[int, int]  # (namespace cookie, ruleset generation): kernel/nft.generation
JOURNAL_MAX = 200  # transactions appended before the next snapshot rewrites the file


class KnownTable:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._ends_at: Generation | None = None  # the generation the file ends with, if this process knows
        self._lines = 0

    def load(self, now: Generation) -> dict[str, Resource] | None:
        """The table, if the file ends at generation `now` of this boot; else None."""
        if self.path is None:
            return None
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            head = json.loads(lines[0])
            if head["boot"] != _boot_id():
                return None
            seen = {r.key: r for r in map(nftables.from_attrs, head["resources"])}
            generation = head["generation"]
            for line in lines[1:]:
                delta = json.loads(line)
                for key in delta["remove"]:
                    seen.pop(key, None)
                seen.update((r.key, r) for r in map(nftables.from_attrs, delta["add"]))
                generation = delta["generation"]
        except (OSError, IndexError, ValueError, KeyError, TypeError):
            return None  # none yet, or not to be trusted
        if tuple(generation) != now:
            return None
        self._ends_at, self._lines = now, len(lines)
        return seen

    def snapshot(self, generation: Generation, seen: Mapping[str, Resource]) -> None:
        if self.path is None:
            return
        head = {"boot": _boot_id(), "generation": list(generation),
                "resources": [r.attrs for r in seen.values()]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(head, separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(self.path)
        self._ends_at, self._lines = generation, 1

    def append(self, before: Generation, generation: Generation, added: Iterable[Resource],
               removed: Iterable[str], seen: Mapping[str, Resource]) -> None:
        """One transaction of netctl's, which took the table from `before` to `generation`."""
        if self.path is None:
            return
        if self._ends_at != before or self._lines >= JOURNAL_MAX:
            self.snapshot(generation, seen)
            return
        delta = {"generation": list(generation), "add": [r.attrs for r in added], "remove": list(removed)}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(delta, separators=(",", ":")) + "\n")
        self._ends_at, self._lines = generation, self._lines + 1

    def forget(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._ends_at = None


@functools.cache
def _boot_id() -> str:
    """This boot's identity: namespace cookies and generations start again at a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""

