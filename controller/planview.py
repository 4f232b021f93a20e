"""A plan as Terraform shows one: kernel actions grouped under the document that asked for them.

`render.plan_text` prints one flat line per kernel object, in execution order: right for
scripts, hard to read for 200 containers (some 2,300 lines, files as character counts).
`plan_view` groups the same actions by owner (`# container web will be created`), indents
each object beneath its header in render's wording, shows file changes as unified diffs and
ends with per-kind document counts and render's exact `Plan: N to create, ...` line.

Owners: a resource says where it lives (its namespace, file path, veth peer, device name), so
the owner of a deleted object, gone from the target, is found from the object itself; device
names and IDs are matched against the target's networks and containers (and those of an
optional previous target). Objects no document owns (the firewall, global sysctls, the DNS
service, the built-in networks' devices) are grouped as `host objects`.

Pure: values in, a string out. Every owner lookup is a dict lookup built once per call.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller import render, scope
from controller.model import Action, Change, Kind, Op, Plan, Resource, Target

Owner = tuple[str, str]  # ("Network" | "Container" | "Host", name)
HOST: Owner = ("Host", "")

# Replacing one of these replaces its document's object as a whole.
_PRIMARY = frozenset({Kind.NETNS, Kind.BRIDGE, Kind.VXLAN})
_HEADER = {
    "create": "will be created",
    "update": "will be updated in-place",
    "replace": "must be replaced",
    "destroy": "will be destroyed",
}
_COUNTED = (("create", "to create"), ("update", "to update"), ("replace", "to replace"),
            ("destroy", "to delete"))
_KINDS = (("Network", "networks"), ("Container", "containers"))

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_SGR = {"+": "\x1b[32m", "~": "\x1b[33m", "-": "\x1b[31m"}
_SYMBOL = {Op.CREATE: "+", Op.UPDATE: "~", Op.DELETE: "-"}


def plan_view(plan: Plan, target: Target, *, color: bool = False, verbose: bool = True,
              previous: Target | None = None) -> str:
    """The plan grouped by document; `previous` (the last applied target, if known) names the
    owners of deleted networks. `verbose=False`: one header line per document."""
    if plan.empty:
        return "no changes\n"
    owners = _Owners.of(target, previous)
    groups = _group(plan.actions, owners)
    paint = _Paint(color)
    lines: list[str] = []
    for owner, actions in groups.items():
        lines.extend(_group_lines(owner, actions, paint, verbose))
    lines.extend(_summary(plan, groups))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ owners


@dataclass
class _Owners:
    """Namespace, device and ID -> owning document, indexed once."""

    namespaces: dict[str, str] = field(default_factory=dict)  # container netns -> container
    devices: dict[str, Owner] = field(default_factory=dict)  # bridge or host veth -> owner
    ids: dict[str, Owner] = field(default_factory=dict)  # network ID and short ID -> owner

    @classmethod
    def of(cls, target: Target, previous: Target | None) -> _Owners:
        index = cls()
        for t in (previous, target):  # the current target wins
            if t is not None:
                index.add(t)
        return index

    def add(self, target: Target) -> None:
        for n in target.networks:
            if n.builtin:  # the shipped networks are nobody's document: their devices are the host's
                continue
            owner = ("Network", n.name)
            if n.device:
                self.devices[n.device] = owner
            self.ids[n.id] = self.ids[n.short_id] = owner
        for c in target.containers:
            if c.netns:
                self.namespaces[c.netns] = c.name
            for ep in c.endpoints:
                self.devices[ep.host_ifname] = ("Container", c.name)

    def owner(self, r: Resource) -> Owner:
        ns = scope.owner_ns(r, {}) or _peer(r)
        if ns:  # a container's namespace is named after the container
            return ("Container", self.namespaces.get(ns, ns))
        for name in _device_names(r):
            if name in self.devices:
                return self.devices[name]
        for ident in _id_names(r):
            if ident in self.ids:
                return self.ids[ident]
        return HOST


def _peer(r: Resource) -> str:
    """The container namespace at the other end of a host veth or overlay port."""
    return str(r.attrs.get("peer_netns") or "") if r.kind in (Kind.VETH, Kind.OVPORT) else ""


def _device_names(r: Resource) -> list[str]:
    """Host devices a resource is, sits on, or configures."""
    a = r.attrs
    match r.kind:
        case Kind.BRIDGE | Kind.VETH | Kind.OVPORT:
            return [str(a["name"])]
        case Kind.ADDRESS | Kind.ROUTE:
            return [str(a["dev"])]
        case Kind.VXLAN:
            return [str(a["bridge"])]
        case Kind.SYSCTL:
            return _sysctl_device(str(a["name"]))
        case Kind.NFT_ELEMENT:  # the bridges an element names ("br-1a2b" . 172.18.0.2 ...)
            return str(a["key"]).split('"')[1::2]
    return []


def _sysctl_device(name: str) -> list[str]:
    """`net.ipv4.conf.DEV.key` -> [DEV] (a device's dots are written `/`); global: []."""
    parts = name.split(".")
    return [parts[3].replace("/", ".")] if len(parts) == 5 and parts[2] == "conf" else []


def _id_names(r: Resource) -> list[str]:
    """Network IDs a resource names: a bridge's owner alias, an overlay's namespace."""
    a = r.attrs
    match r.kind:
        case Kind.BRIDGE:
            return [str(a.get("alias") or "").removeprefix("netctl:")]
        case Kind.VXLAN:
            return [str(a["netns"])]
        case Kind.FDB | Kind.NEIGH:
            return [str(a["overlay"])]
    return []


def _group(actions: Iterable[Action], owners: _Owners) -> dict[Owner, list[Action]]:
    """Actions by owner, owners in plan order of first appearance, actions in plan order."""
    groups: dict[Owner, list[Action]] = {}
    for a in actions:
        groups.setdefault(owners.owner(a.resource), []).append(a)
    return groups


# ----------------------------------------------------------------------------------- headers


def _status(owner: Owner, actions: Sequence[Action]) -> str:
    ops = {a.op for a in actions}
    if ops == {Op.CREATE}:
        return "create"
    if ops == {Op.DELETE}:
        return "destroy"
    if owner != HOST and _replaced(actions):
        return "replace"
    return "update"


def _replaced(actions: Sequence[Action]) -> bool:
    """The document's namespace or bridge is deleted and created again."""
    deleted = {a.resource.key for a in actions if a.op is Op.DELETE and a.resource.kind in _PRIMARY}
    return any(a.op is Op.CREATE and a.resource.key in deleted for a in actions)


def _title(owner: Owner) -> str:
    return "host objects" if owner == HOST else f"{owner[0].lower()} {owner[1]}"


def _header(owner: Owner, actions: Sequence[Action], verbose: bool) -> str:
    line = f"# {_title(owner)} {_HEADER[_status(owner, actions)]}"
    if not verbose:
        n = len(actions)
        line += f" ({n} object{'' if n == 1 else 's'})"
    return line


# ------------------------------------------------------------------------------------ bodies


@dataclass(frozen=True)
class _Paint:
    """ANSI SGR colouring, or none at all."""

    on: bool

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.on else text

    def symbol(self, sym: str, rest: str, indent: str = "  ") -> str:
        """`indent + sym + rest` with the symbol coloured."""
        shown = f"{_SGR[sym]}{sym}{_RESET}" if self.on and sym in _SGR else sym
        return f"{indent}{shown}{rest}"

    def line(self, sym: str, text: str) -> str:
        """A whole line in its symbol's colour (diff lines)."""
        return f"{_SGR[sym]}{text}{_RESET}" if self.on and sym in _SGR else text


def _group_lines(owner: Owner, actions: Sequence[Action], paint: _Paint, verbose: bool) -> list[str]:
    header = paint.bold(_header(owner, actions, verbose))
    if not verbose:
        return [header]
    lines = [header]
    for a in actions:
        lines.extend(_action_lines(a, paint))
    lines.append("")  # a blank line after each group, as Terraform
    return lines


def _action_lines(a: Action, paint: _Paint) -> list[str]:
    sym = _SYMBOL[a.op]
    text = " " + render.describe(a.resource)
    if a.resource.kind is Kind.CHAIN:
        return [paint.symbol(sym, text), *_rule_lines(a, paint)]
    changes, diff = _content_apart(a, paint)
    if a.op is Op.UPDATE and changes:
        text += ": " + ", ".join(f"{c.name} {_short(c.old)} -> {_short(c.new)}" for c in changes)
    return [paint.symbol(sym, text), *diff]


def _content_apart(a: Action, paint: _Paint) -> tuple[list[Change], list[str]]:
    """An update's changes but a file's content, and that content's diff lines."""
    changes = list(a.changes)
    content = next((c for c in changes if c.name == "content"), None)
    if a.resource.kind is not Kind.FILE or content is None:
        return changes, []
    changes.remove(content)
    return changes, _file_diff(str(a.resource.attrs["path"]), content.old, content.new, paint)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"({len(str(value))} characters)"


def _rule_lines(a: Action, paint: _Paint) -> list[str]:
    """A chain's change rule by rule, in render.plan_text's words, one level deeper."""
    name = a.resource.attrs["chain"]
    new = list(a.resource.attrs.get("rules") or ())
    old: list[str] = []
    if a.op is Op.UPDATE:
        old = next((list(c.old or ()) for c in a.changes if c.name == "rules"), new)
    elif a.op is Op.DELETE:
        old, new = new, []
    old_set, new_set = set(old), set(new)
    gone = [paint.symbol("-", f" -A {name} {r}", "      ") for r in old if r not in new_set]
    added = [paint.symbol("+", f" -A {name} {r}", "      ") for r in new if r not in old_set]
    if a.op is Op.UPDATE and not gone and not added and old != new:
        added = [paint.symbol("~", " (rules reordered)", "      ")]
    return gone + added


def _file_diff(path: str, old: Any, new: Any, paint: _Paint) -> list[str]:
    """A file's content change as a unified diff, indented beneath the file's line."""
    lines = difflib.unified_diff(
        str(old or "").splitlines(), str(new or "").splitlines(),
        fromfile=f"{path} (old)", tofile=f"{path} (new)", lineterm="",
    )
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            out.append("      " + paint.bold(line))
        else:
            out.append("      " + paint.line(line[:1], line))
    return out


# ----------------------------------------------------------------------------------- summary


def _summary(plan: Plan, groups: dict[Owner, list[Action]]) -> list[str]:
    """`networks: 1 to create`, `containers: 3 to create, 1 to update`, then plan_text's line."""
    counts: dict[str, dict[str, int]] = {}
    for owner, actions in groups.items():
        if owner != HOST:
            per = counts.setdefault(owner[0], {})
            status = _status(owner, actions)
            per[status] = per.get(status, 0) + 1
    lines = []
    for kind, plural in _KINDS:
        if kind in counts:
            parts = [f"{counts[kind][s]} {words}" for s, words in _COUNTED if counts[kind].get(s)]
            lines.append(f"{plural}: {', '.join(parts)}")
    lines.append(f"Plan: {plan.summary()}.")
    return lines


def owners_of(plan: Plan, target: Target) -> set[Owner]:
    """The documents the plan's actions belong to (for `netctl graph`: what drifted)."""
    owners = _Owners.of(target, None)
    return {owners.owner(a.resource) for a in plan.actions}
