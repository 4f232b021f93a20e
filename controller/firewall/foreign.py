"""Rules netctl does not own that decide a forwarded packet first (pure): iptables' FORWARD.

`netctl explain` asks what the rest of the host's firewall does to one packet (a `Flow`: as
the forward hook sees it, after DNAT and before masquerade). With the iptables backend,
FORWARD's rules above netctl's jump decide first: the user's chain (NETCTL-USER, Docker's
DOCKER-USER) and anything inserted there; an ACCEPT there skips netctl's chain, a DROP ends
the packet. With the nftables backend, iptables' FORWARD is another base chain on the same
hook: its DROP still ends the packet, its ACCEPT does not override netctl's table.

Matches evaluated: -s, -d, -i, -o (with `+`), -p, --dport/--dports, `!` before any of them,
and -m tcp/udp/sctp/comment/multiport. A rule with any other match (conntrack, mark, set...)
is not guessed at: it "may match", and explain says so.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from controller.firewall import render

DROPS = ("DROP", "REJECT")
_SKIPPED_MODULES = frozenset({"tcp", "udp", "sctp", "comment", "multiport"})
_PROTOCOLS = {"6": "tcp", "17": "udp", "132": "sctp"}


@dataclass(frozen=True)
class Flow:
    src: str
    dst: str
    proto: str
    dport: int | None = None
    iif: str | None = None  # None: not known
    oif: str | None = None


@dataclass(frozen=True)
class Decision:
    verdict: str  # "DROP" or "ACCEPT"
    where: str  # "FORWARD, rule 3 (-s 10.10.1.10/32 -j DROP)"


@dataclass
class Walk:
    decision: Decision | None = None
    unsure: list[str] = field(default_factory=list)  # rules that may match: not evaluated


def first_decision(flow: Flow, chains: Mapping[str, Sequence[str]], netctl_owns_forward: bool) -> Walk:
    """What FORWARD does to `flow` before netctl's own chain would (iptables backend:
    `netctl_owns_forward`) or besides it (nftables backend)."""
    walk = Walk()
    _walk(flow, chains, "FORWARD", netctl_owns_forward, walk, depth=0)
    return walk


def _walk(flow: Flow, chains: Mapping[str, Sequence[str]], name: str, ours: bool, walk: Walk,
          depth: int) -> bool:
    """True when the walk ended (a decision, or netctl's chain reached)."""
    for number, rule in enumerate(chains.get(name, ()), 1):
        words = _words(rule)
        target = _target(words)
        if target == render.FORWARD:
            return ours  # netctl's chain decides from here (iptables backend)
        matched = _matches(flow, words)
        where = f"{name}, rule {number} ({rule})"
        if matched is None:
            if target in DROPS or target == "ACCEPT":
                walk.unsure.append(where)
            continue
        if not matched:
            continue
        if target in DROPS:
            walk.decision = Decision("DROP", where)
            return True
        if target == "ACCEPT":
            if ours:  # before netctl's jump: accepted without it
                walk.decision = Decision("ACCEPT", where)
                return True
            return False  # another base chain's accept ends only that chain
        if target == "RETURN":
            return False
        nested = target is not None and target in chains and depth < 8  # a user chain: into it
        if nested and target is not None and _walk(flow, chains, target, ours, walk, depth + 1):
            return True
    return False


def _words(rule: str) -> list[str]:
    try:
        return shlex.split(rule)
    except ValueError:
        return rule.split()


def _target(words: Sequence[str]) -> str | None:
    for i, w in enumerate(words[:-1]):
        if w in ("-j", "--jump", "-g", "--goto"):
            return words[i + 1]
    return None


def _matches(flow: Flow, words: Sequence[str]) -> bool | None:
    """True, False, or None when the rule matches on something not evaluated."""
    i, negate, result = 0, False, True
    while i < len(words):
        w = words[i]
        if w == "!":
            negate, i = True, i + 1
            continue
        if w in ("-j", "--jump", "-g", "--goto"):
            break
        value = words[i + 1] if i + 1 < len(words) else ""
        if w == "-m" or w == "--match":
            if value not in _SKIPPED_MODULES:
                return None
            i += 2
            continue
        if w == "--comment":
            i += 2
            continue
        one = _one(flow, w, value)
        if one is None:
            return None
        if one == negate:
            result = False
        negate, i = False, i + 2
    return result


def _one(flow: Flow, option: str, value: str) -> bool | None:
    if option in ("-s", "--source"):
        return _in(flow.src, value)
    if option in ("-d", "--destination"):
        return _in(flow.dst, value)
    if option in ("-i", "--in-interface"):
        return None if flow.iif is None else _interface(flow.iif, value)
    if option in ("-o", "--out-interface"):
        return None if flow.oif is None else _interface(flow.oif, value)
    if option in ("-p", "--protocol"):
        return value == "all" or _PROTOCOLS.get(value, value) == flow.proto
    if option in ("--dport", "--destination-port", "--dports", "--destination-ports"):
        return None if flow.dport is None else _port_in(flow.dport, value)
    return None


def _in(address: str, networks: str) -> bool | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None  # an end the target has no address for
    for text in networks.split(","):
        try:
            if ip in ipaddress.ip_network(text, strict=False):
                return True
        except ValueError:
            continue
    return False


def _interface(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _port_in(port: int, spec: str) -> bool:
    for part in spec.split(","):
        first, _, last = part.partition(":")
        try:
            if int(first or 0) <= port <= int(last or first or 65535):
                return True
        except ValueError:
            continue
    return False
