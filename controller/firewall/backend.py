"""The firewall backends: how netctl's rules are read from and written to the kernel.
observe/ and execute/ talk to `current()` (the one chosen for this command) and `for_kind`,
never to a tool by name.

iptables (the default): one `iptables-save` per family to read, one `iptables-restore
--noflush` per table that changes to write (firewall/iptables.py makes the text).
nftables: one `nft -j list table inet netctl` to read, one `nft -f -` transaction to write
(firewall/nftables.py). A backend also owns the FORWARD policy that turning on forwarding
implies, and says what in the rest of the host's firewall would undo its verdicts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from controller.errors import UserError
from controller.firewall import iptables, nftables, nftcache, render
from controller.firewall.wanted import BACKENDS, DEFAULT
from controller.kernel import nft as kernel_nft
from controller.model import Action, Kind, Op, Resource

log = structlog.get_logger("netctl.firewall")


class Backend(Protocol):
    name: str
    kinds: frozenset[Kind]  # the resource kinds it reads and writes

    def observe(self) -> list[Resource]:
        """netctl's chains (with their rules) and jumps, as the kernel has them."""
        ...

    def apply(self, actions: Sequence[Action]) -> int:
        """Chain and jump actions, one transaction per table; the processes spawned."""
        ...

    def forward_policy_drop(self, family: str) -> None:
        """Forwarding was just turned on: forward nothing but what the chains accept."""
        ...

    def coexistence(self) -> list[str]:
        """What elsewhere in the host's firewall drops what this backend accepts."""
        ...


SAVE = {"ipv4": "iptables-save", "ipv6": "ip6tables-save"}
RESTORE = {"ipv4": "iptables-restore", "ipv6": "ip6tables-restore"}
POLICY = {"ipv4": "iptables", "ipv6": "ip6tables"}


class Iptables:
    name = "iptables"
    kinds = frozenset({Kind.CHAIN, Kind.JUMP})

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
        return spawned + self._forward_policy(actions)

    def _forward_policy(self, actions: Sequence[Action]) -> int:
        """A migration moves the FORWARD policy with the rules: the DROP netctl set when it
        turned forwarding on goes with netctl's FORWARD jump when another backend takes
        over (it would drop what that backend accepts), and comes back with the jump."""
        spawned = 0
        enabled = netctl_enabled_forwarding()
        for a in actions:
            family = a.resource.attrs.get("family", "")
            if a.resource.kind is not Kind.JUMP or family not in enabled:
                continue
            if not a.resource.key.endswith(f"/filter/FORWARD/{render.FORWARD}"):
                continue
            if a.op is Op.CREATE and family in _SELECTED.dropped:
                continue  # set a moment ago, when this apply turned forwarding on
            if a.op is Op.CREATE:
                policy = "DROP"
            elif a.op is Op.DELETE and current() is not self:
                policy = "ACCEPT"
            else:
                continue
            subprocess.run([POLICY[family], "-P", "FORWARD", policy], check=True, capture_output=True)
            log.info("FORWARD policy", family=family, policy=policy)
            spawned += 1
        return spawned

    def forward_policy_drop(self, family: str) -> None:
        subprocess.run([POLICY[family], "-P", "FORWARD", "DROP"], check=True, capture_output=True)
        _SELECTED.dropped.add(family)

    def coexistence(self) -> list[str]:
        return []  # iptables' chains are the kernel's FORWARD itself: its policy is netctl's


NFT = "nft"
NFT_CACHE = "nftables-table.json"  # in the state dir: the table as last known, and when


class Nftables:
    """netctl's own table `inet netctl`; nothing is ever added to another table.

    Reading 1,000 ports' elements back (`nft -j list`) costs more than publishing one more
    port: the table is kept as last known with the ruleset generation it was true at, in
    memory and in the state dir for the next command (firewall/nftcache.py). While the
    generation is unchanged nothing can have changed, and the read is skipped; anyone's
    commit makes the next observe read again."""

    name = "nftables"
    kinds = frozenset({Kind.NFT_TABLE, Kind.NFT_ELEMENT})

    def __init__(self, cache: Path | None = None) -> None:
        self._seen: dict[str, Resource] = {}
        self._generation: nftcache.Generation | None = None  # when _seen was the kernel's table
        self._known = nftcache.KnownTable(cache)

    def observe(self) -> list[Resource]:
        now = kernel_nft.generation()
        if now is not None and now == self._generation:
            return list(self._seen.values())
        known = self._known.load(now) if now is not None else None
        if known is not None:
            self._seen, self._generation = known, now
            return list(known.values())
        if shutil.which(NFT) is None:
            return []
        result = subprocess.run([NFT, "-j", "list", "table", nftables.FAMILY, nftables.TABLE],
                                capture_output=True, text=True)
        seen = nftables.owned_resources(json.loads(result.stdout)) if result.returncode == 0 else []
        self._seen = {r.key: r for r in seen}  # returncode != 0: no such table
        # a commit between `now` and the read: recorded at `now`, the next observe reads again
        self._generation = now
        if now is not None and self._seen:
            self._known.snapshot(now, self._seen)
        else:  # no table (an iptables host, or all deleted): nothing to keep in the state dir
            self._known.forget()
        return seen

    def apply(self, actions: Sequence[Action]) -> int:
        payload = nftables.script(actions)
        result = subprocess.run([NFT, "-f", "-"], input=payload, capture_output=True, text=True)
        if result.returncode != 0:
            self._forget()
            raise RuntimeError(f"nft -f: {result.stderr.strip()}\ninput:\n{payload[:4000]}")
        log.info("nft transaction", lines=payload.count("\n"))
        added: list[Resource] = []
        removed: list[str] = []
        for a in actions:
            if a.op is Op.DELETE:
                self._seen.pop(a.resource.key, None)
                removed.append(a.resource.key)
                if a.resource.kind is Kind.NFT_TABLE:  # its elements go with it
                    removed += [k for k, r in self._seen.items() if r.kind is Kind.NFT_ELEMENT]
                    self._seen = {k: r for k, r in self._seen.items() if r.kind is not Kind.NFT_ELEMENT}
            else:
                self._seen[a.resource.key] = a.resource
                added.append(a.resource)
        # `nft -f` is one transaction, all or nothing: if it was the only commit since the
        # table was read, the table is now exactly what was read plus these actions
        before, now = self._generation, kernel_nft.generation()
        if before is None or now is None or now != (before[0], before[1] + 1):
            self._forget()
            return 1
        self._generation = now
        if self._seen:
            self._known.append(before, now, added, removed, self._seen)
        else:
            self._known.forget()  # the table is gone: so is its record
        return 1

    def _forget(self) -> None:
        self._generation = None
        self._known.forget()

    def forward_policy_drop(self, family: str) -> None:
        # Docker's nftables backend leaves forwarding between other interfaces to the host's
        # own firewall (the README says how to block it); netctl does the same.
        log.info("IP forwarding turned on: forwarding between non-netctl interfaces is not "
                    "filtered by netctl's nftables table", family=family)

    def coexistence(self) -> list[str]:
        """Base chains of other tables on the forward hook with policy drop: their drop wins
        over netctl's accept (an accept ends only its own base chain)."""
        if shutil.which(NFT) is None:
            return []
        result = subprocess.run([NFT, "-j", "list", "chains"], capture_output=True, text=True)
        if result.returncode != 0:
            return []
        return foreign_drops(json.loads(result.stdout))


def foreign_drops(listing: dict[str, Any]) -> list[str]:
    notes = []
    for item in listing.get("nftables", []):
        c = item.get("chain")
        if not c or c.get("hook") != "forward":
            continue
        where = (f"table {c['family']} {c['table']} chain {c['name']} (hook forward, priority "
                 f"{c.get('prio')})")
        if c["table"] == "firewalld":
            # firewalld's policy is accept, but its last rule rejects what no zone allows
            notes.append(f"{where}: firewalld rejects forwarded traffic between interfaces of no "
                         "zone; put netctl's bridges in a zone that forwards, as Docker does with its "
                         "`docker` zone: `firewall-cmd --permanent --zone=trusted --add-interface=BRIDGE`")
            continue
        if c.get("policy") != "drop" or (c["family"], c["table"]) == (nftables.FAMILY, nftables.TABLE):
            continue
        hint = ("iptables' FORWARD policy (netctl's iptables backend sets it when it turns forwarding "
                "on): `iptables -P FORWARD ACCEPT`" if c["table"] == "filter" and c["name"] == "FORWARD"
                else "accept netctl's bridges there (README: The nftables backend)")
        notes.append(f"{where} has policy drop: it drops forwarded traffic that netctl's nftables "
                     f"table accepts; {hint}")
    return notes


_CLASSES: dict[str, type[Iptables] | type[Nftables]] = {"iptables": Iptables, "nftables": Nftables}


@dataclass
class _Selection:
    """One command's (or one reconcile's) backends: fresh instances; what outlives a converge
    is only nftables' record of its table, trusted while the ruleset's generation matches."""

    backends: dict[str, Backend]
    current: Backend
    read: tuple[Backend, ...]  # the current one first, then any being migrated away from
    # the families netctl turned forwarding on for (kept in the state by the pipeline)
    forwarding: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)  # FORWARD policies set to DROP by this process


def named(name: str) -> type[Iptables] | type[Nftables]:
    if name not in _CLASSES:
        raise UserError(f"unknown firewall backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return _CLASSES[name]


def _selection(
    name: str, previous: Sequence[str] = (), forwarding: Iterable[str] = (), state_dir: Path | None = None
) -> _Selection:
    for n in (name, *previous):
        named(n)  # an unknown name is the user's error
    backends: dict[str, Backend] = {"iptables": Iptables(),
                                    "nftables": Nftables(state_dir / NFT_CACHE if state_dir else None)}
    chosen = backends[name]
    others = tuple(backends[p] for p in previous if p != name)
    return _Selection(backends, chosen, (chosen, *others), set(forwarding))


def select(
    name: str, previous: Sequence[str] = (), forwarding: Iterable[str] = (), state_dir: Path | None = None
) -> Backend:
    """The backend this command writes with, and those whose leftovers it reads to remove
    them (a migration: the pipeline chooses both from the option and the state). Fresh
    instances each time; what outlives them is in `state_dir` (nftables' table as last known)."""
    global _SELECTED
    _SELECTED = _selection(name, previous, forwarding, state_dir)
    return _SELECTED.current


_SELECTED = _selection(DEFAULT)


def current() -> Backend:
    return _SELECTED.current


def read() -> tuple[Backend, ...]:
    return _SELECTED.read


def for_kind(kind: Kind) -> type[Iptables] | type[Nftables] | None:
    return next((b for b in _CLASSES.values() if kind in b.kinds), None)


def is_rule(kind: Kind) -> bool:
    return for_kind(kind) is not None


def apply(actions: Sequence[Action]) -> int:
    """Every firewall action of a plan: the current backend's first (the new rules are in
    place before a migration removes the old ones); the processes spawned."""
    spawned = 0
    for b in sorted(_SELECTED.backends.values(), key=lambda b: b is not current()):
        mine = [a for a in actions if a.resource.kind in b.kinds]
        if mine:
            spawned += b.apply(mine)
    return spawned


# ---------------------------------------------------------------- forwarding netctl turned on


def forwarding_enabled(family: str) -> None:
    """netctl just turned forwarding on: remember it (a later migration between backends
    moves the FORWARD policy that goes with it) and let the backend close what it opened."""
    _SELECTED.forwarding.add(family)
    current().forward_policy_drop(family)


def netctl_enabled_forwarding() -> set[str]:
    return set(_SELECTED.forwarding)
