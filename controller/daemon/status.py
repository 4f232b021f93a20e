"""What `netctl status` shows, computed from each reconcile (pure), and what counts as drift.

A row per object (Network, Container) and per manifest file that fails validation (File).
Only the objects a reconcile covered get a new time and duration: a reconcile that read one
container's namespace says nothing new about the others.

Drift is a kernel change nobody asked for: an action that recreates or updates a resource
whose target did not change since the last reconcile, or deletes one that was not in it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.model import Action, Document, Kind, Op, Resource, StatusRow, Target
from controller.scope import owner_ns, veth_peers

ObjectKey = tuple[str, str]  # (kind, name): ("Container", "web")

CONVERGED, PENDING, FAILED = "converged", "pending", "failed"


def source_label(origin: str, doc: Document) -> str:
    """`controller:/srv/manifests/web.yaml:3`, `apply:/tmp/x.yaml:1`, `cli:<network create>`."""
    return f"{origin.split(':', 1)[0]}:{doc.source}"


def drift(actions: Iterable[Action], previous: Mapping[str, Resource]) -> list[Action]:
    """The actions that repaired drift rather than applied a new desired state."""
    if not previous:
        return []  # the first reconcile: nothing to compare with
    out = []
    for a in actions:
        before = previous.get(a.resource.key)
        if (a.op is Op.DELETE and before is None) or (a.op is not Op.DELETE and before == a.resource):
            out.append(a)
    return out


def describe(action: Action) -> str:
    """`+ veth veth1a2b`, `~ bridge netctl0: up False -> True`, `~ file /etc/..: content changed`."""
    r = action.resource
    a = r.attrs
    name = a.get("name") or a.get("path") or a.get("address") or a.get("dst") or r.key
    where = f"{r.netns}/" if r.netns and r.kind is not Kind.NETNS else ""
    text = f"{action.symbol} {r.kind.value} {where}{name}"
    if action.changes:
        text += ": " + ", ".join(_change(c.name, c.old, c.new) for c in action.changes)
    return text


def _change(name: str, old: object, new: object) -> str:
    if any(isinstance(v, str | tuple | list) and len(repr(v)) > 40 for v in (old, new)):
        return f"{name} changed"  # file contents, chain rules: the key says enough
    return f"{name} {old!r} -> {new!r}"


def object_of(resource: Resource, target: Target, peers: Mapping[str, str]) -> ObjectKey | None:
    """The manifest object a kernel resource belongs to (None: shared, e.g. a firewall chain)."""
    ns = owner_ns(resource, peers)
    if ns:
        c = next((c for c in target.containers if c.netns == ns), None)
        return ("Container", c.name) if c else ("Container", ns)
    if ns is None and resource.kind in (Kind.BRIDGE, Kind.ADDRESS):
        device = resource.attrs.get("name") if resource.kind is Kind.BRIDGE else resource.attrs.get("dev")
        n = next((n for n in target.networks if n.device == device), None)
        return ("Network", n.name) if n else None
    return None


def repaired_objects(
    actions: Sequence[Action], target: Target, wanted: Sequence[Resource]
) -> dict[ObjectKey, list[str]]:
    peers = veth_peers(wanted)
    out: dict[ObjectKey, list[str]] = {}
    for a in actions:
        key = object_of(a.resource, target, peers)
        if key is not None:
            out.setdefault(key, []).append(describe(a))
    return out


@dataclass
class Round:
    """What one reconcile found out, for the rows of its objects."""

    when: str
    seconds: float
    documents: Sequence[tuple[Document, str]]  # every desired object and its origin
    covered: Collection[str] | None  # container namespaces reconciled; None: all
    netns_of: Mapping[str, str | None] = field(default_factory=dict)  # container -> namespace
    failed: Mapping[ObjectKey, str] = field(default_factory=dict)
    pending: Mapping[ObjectKey, str] = field(default_factory=dict)
    repaired: Mapping[ObjectKey, list[str]] = field(default_factory=dict)
    bad_files: Mapping[str, list[str]] = field(default_factory=dict)  # file -> problems
    everything_failed: str = ""  # the reconcile failed as a whole: this is why


class StatusBook:
    """The status table as the controller last wrote it; `apply` returns what to write."""

    def __init__(self, rows: Iterable[StatusRow]) -> None:
        self.rows: dict[ObjectKey, StatusRow] = {(r.kind, r.name): r for r in rows}

    def apply(self, r: Round) -> tuple[list[StatusRow], list[ObjectKey]]:
        new: dict[ObjectKey, StatusRow] = {}
        for doc, origin in r.documents:
            key = (doc.kind, doc.name)
            new[key] = self._row(key, source_label(origin, doc), r)
        for path, problems in r.bad_files.items():
            new[("File", path)] = StatusRow(
                "File", path, FAILED, "; ".join(problems), r.when, r.seconds, f"controller:{path}"
            )
        put = [row for key, row in new.items() if self.rows.get(key) != row]
        drop = [key for key in self.rows if key not in new]
        self.rows = new
        return put, drop

    def _row(self, key: ObjectKey, source: str, r: Round) -> StatusRow:
        old = self.rows.get(key) or StatusRow(key[0], key[1], PENDING, "", "", 0.0, source)
        ns = r.netns_of.get(key[1]) if key[0] == "Container" else None
        covered = r.covered is None or ns is None or ns in r.covered

        def checked(state: str, reason: str, repaired: str = old.repaired) -> StatusRow:
            return replace(old, state=state, reason=reason, source=source, at=r.when,
                           seconds=r.seconds, repaired=repaired)

        if r.everything_failed:
            return checked(FAILED, r.everything_failed)
        if key in r.failed:
            return checked(FAILED, r.failed[key])
        if key in r.pending:
            return replace(old, state=PENDING, reason=r.pending[key], source=source)
        if key in r.repaired:
            return checked(CONVERGED, "; ".join(r.repaired[key]), repaired=r.when)
        if not covered:
            return replace(old, source=source)
        # Converged: a drift repair stays visible (its time is in `repaired`), a failure does not.
        return checked(CONVERGED, old.reason if old.repaired and old.state == CONVERGED else "")
