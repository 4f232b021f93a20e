"""A simulated kernel for the pure layers: a dict key -> Resource that applies plans.

It behaves like the real kernel where order matters and fails loudly where the real one
would (EEXIST, ENOENT, a missing master or namespace), so that ordering bugs in the planner
show up as exceptions here instead of on a real host:

- create: the key must be absent; every dep and the parent must be present.
- update: the key must be present with the same kind; the new deps and parent must be present.
- delete: the key must be present; it is removed together with everything the kernel would
  destroy with it: every resource whose `parent` chain leads to it and, for a namespace,
  everything living in it and every veth whose peer end is in it (and their children too).

After a whole plan, every remaining resource must still have its deps and parent
(`check_consistent`): a plan that deletes something a surviving resource needs is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.model import Action, Kind, Observed, Op, Plan, Resource


class KernelError(AssertionError):
    """An action that the real kernel would refuse, or that leaves it inconsistent."""


class FakeKernel:
    def __init__(self, resources: Iterable[Resource] = ()) -> None:
        self.resources: dict[str, Resource] = {}
        for r in resources:
            if r.key in self.resources:
                raise KernelError(f"duplicate key {r.key}")
            self.resources[r.key] = r
        self.log: list[str] = []  # what happened, in order ("create k", "destroy k" for cascades)

    # ------------------------------------------------------------------ views

    def observed(self) -> Observed:
        return Observed(tuple(self.resources[k] for k in sorted(self.resources)))

    def keys(self) -> set[str]:
        return set(self.resources)

    # ------------------------------------------------------------------ actions

    def apply(self, plan: Plan) -> None:
        for action in plan.actions:
            self.act(action)
        self.check_consistent()

    def act(self, action: Action) -> None:
        match action.op:
            case Op.CREATE:
                self.create(action.resource)
            case Op.UPDATE:
                self.update(action.resource)
            case Op.DELETE:
                self.delete(action.resource.key)

    def create(self, r: Resource) -> None:
        if r.key in self.resources:
            raise KernelError(f"create {r.key}: already exists")
        self._require(r, "create")
        self.resources[r.key] = r
        self.log.append(f"create {r.key}")

    def update(self, r: Resource) -> None:
        have = self.resources.get(r.key)
        if have is None:
            raise KernelError(f"update {r.key}: does not exist")
        if have.kind is not r.kind:
            raise KernelError(f"update {r.key}: kind {have.kind.value} cannot become {r.kind.value}")
        self._require(r, "update")
        self.resources[r.key] = r
        self.log.append(f"update {r.key}")

    def delete(self, key: str) -> None:
        if key not in self.resources:
            raise KernelError(f"delete {key}: does not exist")
        doomed = self.destroyed_with(key)
        for k in sorted(doomed - {key}):
            del self.resources[k]
            self.log.append(f"destroy {k}")
        del self.resources[key]
        self.log.append(f"delete {key}")

    # ------------------------------------------------------------------ kernel rules

    def destroyed_with(self, key: str) -> set[str]:
        """`key` and everything the kernel destroys with it, transitively."""
        out = {key}
        stack = [key]
        while stack:
            current = stack.pop()
            for r in self.resources.values():
                if r.key not in out and self._dies_with(r, current):
                    out.add(r.key)
                    stack.append(r.key)
        return out

    def _dies_with(self, r: Resource, key: str) -> bool:
        if r.parent == key:
            return True
        gone = self.resources.get(key)
        if gone is not None and gone.kind is Kind.NETNS:
            ns = gone.attrs.get("name")
            return r.netns == ns or (r.kind is Kind.VETH and r.attrs.get("peer_netns") == ns)
        return False

    def _require(self, r: Resource, what: str) -> None:
        missing = [d for d in (*r.deps, *([r.parent] if r.parent else [])) if d not in self.resources]
        if missing:
            raise KernelError(f"{what} {r.key}: needs {', '.join(sorted(set(missing)))} first")

    def check_consistent(self) -> None:
        for r in self.resources.values():
            self._require(r, "left")
