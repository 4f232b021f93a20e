"""The firewall as data, the same for every backend (pure): rules, chains and jumps.

A `Rule` says what it matches and its verdict; a backend (firewall/iptables.py) writes it in
its own syntax. Chains and jumps are resources whose `rules` are that rendered text, so that
the planner compares them with what the backend reads back, as strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.model import Kind, Resource

PREFIX = "NETCTL"  # every chain netctl owns starts with it


@dataclass(frozen=True)
class Rule:
    """One rule. `verdict` is ACCEPT, DROP, MASQUERADE, DNAT or a chain to jump to."""

    verdict: str
    src: str | None = None
    dst: str | None = None
    in_dev: str | None = None
    in_negated: bool = False
    out_dev: str | None = None
    out_negated: bool = False
    proto: str | None = None  # tcp, udp, sctp
    sport: int | None = None
    dport: int | None = None
    src_local: bool = False  # the source is one of the host's own addresses
    dst_local: bool = False  # the destination is one of the host's own addresses
    ctstate: str | None = None  # e.g. "RELATED,ESTABLISHED", "DNAT"
    to: str | None = None  # DNAT: the new destination, ADDRESS:PORT ([V6]:PORT)

    @property
    def jumps_to(self) -> str | None:
        return self.verdict if self.verdict.startswith(PREFIX) else None


Text = Callable[[Rule], str]  # a backend's rendering of one rule


def chain_key(family: str, table: str, chain: str) -> str:
    return f"chain:{family}/{table}/{chain}"


def jump_key(family: str, table: str, builtin: str, target: str) -> str:
    return f"jump:{family}/{table}/{builtin}/{target}"


def chain(
    family: str, table: str, name: str, rules: Iterable[str] | None, targets: Iterable[str] = ()
) -> Resource:
    """A chain and its rendered rules in order (`None`: the chain exists, its rules are not
    ours); `targets`: the chains its rules jump to, which must exist first."""
    attrs: dict[str, object] = {"family": family, "table": table, "chain": name}
    deps: tuple[str, ...] = ()
    if rules is not None:
        attrs["rules"] = tuple(dict.fromkeys(rules))  # a rule twice would be a no-op twice
        deps = tuple(chain_key(family, table, t) for t in sorted(set(targets)) if t != name)
    return Resource(Kind.CHAIN, chain_key(family, table, name), attrs, deps=deps)


def jump(
    family: str, table: str, builtin: str, rule: str, target: str, after: str | None = None
) -> Resource:
    """`rule` (rendered; it jumps to `target`) inserted first in built-in chain `builtin`.
    `after`: a jump key inserted before this one, so that this one ends up above it."""
    deps = [chain_key(family, table, target)]
    if after:
        deps.append(after)
    return Resource(
        Kind.JUMP,
        jump_key(family, table, builtin, target),
        {"family": family, "table": table, "chain": builtin, "rule": rule},
        deps=tuple(deps),
        immutable=frozenset({"rule"}),
    )


def chain_of(family: str, table: str, name: str, rules: Iterable[Rule] | None, text: Text) -> Resource:
    """A chain from rules as data, rendered by the backend's `text`."""
    if rules is None:
        return chain(family, table, name, None)
    listed = list(rules)
    targets = [r.jumps_to for r in listed if r.jumps_to]
    return chain(family, table, name, [text(r) for r in listed], [t for t in targets if t])


def jump_of(
    family: str, table: str, builtin: str, rule: Rule, text: Text, after: str | None = None
) -> Resource:
    assert rule.jumps_to is not None
    return jump(family, table, builtin, text(rule), rule.jumps_to, after)
