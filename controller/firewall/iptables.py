"""iptables-save text -> resources, and actions -> iptables-restore input (pure).

The restore input patches chains rule by rule (`-D`, `-I CHAIN N`) instead of redeclaring them:
with `--noflush`, a `:CHAIN` line flushes the chain, so redeclaring would rewrite a whole
chain for a one-rule change. Each table's input is applied by one `iptables-restore
--noflush` and committed atomically by the kernel: there is no moment with half a ruleset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from controller.firewall import render
from controller.firewall.rules import PREFIX, Rule, chain, jump
from controller.model import Action, Kind, Op, Resource

BUILTIN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
TABLES = ("raw", "nat", "filter")


def rule_text(r: Rule) -> str:
    """A rule exactly as `iptables-save` prints it (so that wanted and observed compare as
    strings): addresses, interfaces, protocol and ports, then matches, then the target."""
    words: list[str] = []
    if r.src:
        words += ["-s", r.src]
    if r.dst:
        words += ["-d", r.dst]
    if r.in_dev:
        words += (["!"] if r.in_negated else []) + ["-i", r.in_dev]
    if r.out_dev:
        words += (["!"] if r.out_negated else []) + ["-o", r.out_dev]
    if r.proto:
        words += ["-p", r.proto, "-m", r.proto]
        if r.sport is not None:
            words += ["--sport", str(r.sport)]
        if r.dport is not None:
            words += ["--dport", str(r.dport)]
    if r.src_local:
        words += ["-m", "addrtype", "--src-type", "LOCAL"]
    if r.dst_local:
        words += ["-m", "addrtype", "--dst-type", "LOCAL"]
    if r.ctstate:
        words += ["-m", "conntrack", "--ctstate", r.ctstate]
    words += ["-j", r.verdict]
    if r.to:
        words += ["--to-destination", r.to]
    return " ".join(words)


@dataclass
class Table:
    chains: dict[str, list[str]] = field(default_factory=dict)  # chain -> rules in order


def parse_save(text: str) -> dict[str, Table]:
    """`iptables-save` output -> table -> chain -> rules (the text after `-A CHAIN `)."""
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), Table())
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current.chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, name, *rest = line.split(" ", 2)
            current.chains.setdefault(name, []).append(rest[0] if rest else "")
    return tables


def owned_resources(family: str, tables: dict[str, Table]) -> list[Resource]:
    """Our chains (NETCTL*) with their rules, and our jumps from built-in chains."""
    out = []
    for table_name, table in tables.items():
        for name, rules in table.chains.items():
            if name.startswith(PREFIX) and name not in BUILTIN:
                if name == render.USER:
                    r = chain(family, table_name, name, None)
                    out.append(_with_attrs(r, user_rules=len(rules)))
                else:
                    targets = [t for rule in rules if (t := _jump_target(rule)) and t.startswith(PREFIX)]
                    out.append(chain(family, table_name, name, rules, targets))
            elif name in BUILTIN:
                for rule in rules:
                    target = _jump_target(rule)
                    if target and target.startswith(PREFIX):
                        out.append(jump(family, table_name, name, rule, target))
    return out


def _jump_target(rule: str) -> str | None:
    words = rule.split()
    for i, word in enumerate(words[:-1]):
        if word in ("-j", "-g"):
            return words[i + 1]
    return None


def _with_attrs(r: Resource, **extra: object) -> Resource:
    from dataclasses import replace

    return replace(r, attrs={**r.attrs, **extra})


# ---------------------------------------------------------------------------- restore input


def restore_input(table: str, actions: Sequence[Action]) -> str:
    """One table's patch, in an order the kernel accepts within one transaction:
    new chains, rule patches (dependencies first), new jumps, old jumps out, old chains out."""
    creates = [a for a in actions if a.op is not Op.DELETE]
    deletes = [a for a in actions if a.op is Op.DELETE]
    lines = [f"*{table}"]
    for a in creates:
        if a.resource.kind is Kind.CHAIN and a.op is Op.CREATE:
            lines.append(f"-N {a.resource.attrs['chain']}")
    for a in creates:
        if a.resource.kind is Kind.CHAIN and "rules" in a.resource.attrs:
            old = _old_rules(a)
            lines.extend(patch(a.resource.attrs["chain"], old, a.resource.attrs["rules"]))
    for a in creates:
        if a.resource.kind is Kind.JUMP:
            lines.append(f"-I {a.resource.attrs['chain']} 1 {a.resource.attrs['rule']}")
    for a in deletes:
        if a.resource.kind is Kind.JUMP:
            lines.append(f"-D {a.resource.attrs['chain']} {a.resource.attrs['rule']}")
    doomed = [a.resource for a in deletes if a.resource.kind is Kind.CHAIN and _deletable(a.resource)]
    lines += [f"-F {r.attrs['chain']}" for r in doomed]
    lines += [f"-X {r.attrs['chain']}" for r in doomed]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _deletable(r: Resource) -> bool:
    """NETCTL-USER holds the user's own rules: it goes only when the user left it empty."""
    return r.attrs["chain"] != render.USER or not r.attrs.get("user_rules")


def _old_rules(a: Action) -> tuple[str, ...]:
    if a.op is Op.CREATE:
        return ()
    for change in a.changes:
        if change.name == "rules":
            return tuple(change.old or ())
    return tuple(a.resource.attrs["rules"])


def patch(chain: str, old: Iterable[str], new: Sequence[str]) -> list[str]:
    """The `-D`/`-I` lines that turn rule list `old` into `new`, touching nothing that stays.

    Rules present in both keep their place when their relative order is unchanged; otherwise
    the chain is flushed and rewritten (still inside the same atomic transaction).
    """
    old = list(old)
    wanted = set(new)
    kept = [r for r in old if r in wanted]
    if kept != [r for r in new if r in set(kept)] or len(set(old)) != len(old):
        return [f"-F {chain}"] + [f"-A {chain} {r}" for r in new]
    lines = [f"-D {chain} {r}" for r in old if r not in wanted]
    present = set(kept)
    for position, rule in enumerate(new, start=1):
        if rule not in present:
            lines.append(f"-I {chain} {position} {rule}")
    return lines
