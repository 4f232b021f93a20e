"""plan(target, observed) -> Plan: the diff and its order (pure).

1. Diff by key: missing -> create; attributes differ -> update in place, or replace
   (delete + create) when an immutable attribute or the kind differs; unwanted -> delete.
2. Lifetimes: deleting a resource destroys its children (`Resource.parent`, transitively), so
   children are never deleted on their own, and wanted children of a deleted parent are
   created again even if they were observed.
3. Order: every delete first, dependents before what they depend on; then creates and
   updates, dependencies first. Ties break by kind and key, so the same input always gives
   the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from controller.model import Action, Change, Kind, Observed, Op, Plan, Resource

# Creation order among independent resources: namespaces and bridges before what plugs in.
_RANK = {
    Kind.NETNS: 0,
    Kind.SYSCTL: 1,
    Kind.BRIDGE: 2,
    Kind.VETH: 3,
    Kind.VXLAN: 2,
    Kind.OVPORT: 3,
    Kind.FDB: 6,
    Kind.NEIGH: 6,
    Kind.NSLINK: 4,
    Kind.ADDRESS: 5,
    Kind.ROUTE: 6,
    Kind.CHAIN: 7,
    Kind.JUMP: 8,
    Kind.NFT_TABLE: 7,
    Kind.NFT_ELEMENT: 8,
    Kind.FILE: 9,
    Kind.SERVICE: 10,
}


def plan(target: Sequence[Resource], observed: Observed | Sequence[Resource]) -> Plan:
    seen = observed.by_key() if isinstance(observed, Observed) else {r.key: r for r in observed}
    wanted = {r.key: r for r in target}

    replaced: set[str] = set()
    updates: list[Action] = []
    for key, want in wanted.items():
        have = seen.get(key)
        if have is None:
            continue
        changes = diff_attrs(have, want)
        if have.kind is not want.kind or any(c.name in want.immutable for c in changes):
            replaced.add(key)
        elif changes:
            updates.append(Action(Op.UPDATE, want, changes))

    doomed = replaced | (seen.keys() - wanted.keys())
    gone = _with_descendants(doomed, seen.values())
    explicit_deletes = [seen[k] for k in gone if k in doomed and not _parent_gone(seen[k], gone)]

    creates = [Action(Op.CREATE, want) for key, want in wanted.items() if key not in seen or key in gone]
    updates = [a for a in updates if a.resource.key not in gone]

    deletes = [
        Action(Op.DELETE, r) for r in reversed(_toposort(explicit_deletes))
    ]
    forward = _toposort([a.resource for a in creates + updates])
    by_key = {a.resource.key: a for a in creates + updates}
    return Plan(tuple(deletes) + tuple(by_key[r.key] for r in forward))


def diff_attrs(have: Resource, want: Resource) -> tuple[Change, ...]:
    return tuple(
        Change(name, have.attrs.get(name), value)
        for name, value in sorted(want.attrs.items())
        if have.attrs.get(name) != value
    )


def _with_descendants(roots: set[str], resources: Iterable[Resource]) -> set[str]:
    """`roots` and every observed resource whose parent chain reaches one of them."""
    children: dict[str, list[str]] = {}
    for r in resources:
        if r.parent is not None:
            children.setdefault(r.parent, []).append(r.key)
    out = set(roots)
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def _parent_gone(resource: Resource, gone: set[str]) -> bool:
    return resource.parent is not None and resource.parent in gone


def _toposort(resources: Sequence[Resource]) -> list[Resource]:
    """Dependencies first (Kahn), ties by kind rank and key; unknown deps already exist."""
    by_key: Mapping[str, Resource] = {r.key: r for r in resources}
    pending = {r.key: {d for d in r.deps if d in by_key and d != r.key} for r in resources}
    dependents: dict[str, list[str]] = {}
    for key, deps in pending.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(key)

    def order(key: str) -> tuple[int, str]:
        return (_RANK[by_key[key].kind], key)

    import heapq

    ready = [order(k) for k, deps in pending.items() if not deps]
    heapq.heapify(ready)
    out: list[Resource] = []
    while ready:
        _, key = heapq.heappop(ready)
        out.append(by_key[key])
        for dependent in dependents.get(key, ()):
            pending[dependent].discard(key)
            if not pending[dependent]:
                heapq.heappush(ready, order(dependent))
    if len(out) != len(resources):
        cycle = sorted(k for k, deps in pending.items() if deps)
        raise ValueError(f"dependency cycle among {cycle}")
    return out
