"""load -> resolve -> observe -> plan -> execute -> verify, in one place.

Every command that changes state (apply, delete, network create/rm/connect/disconnect, the
controller's reconciles) goes through `reconcile`: the desired documents are the store's
plus or minus the change, validated as a whole, allocated and persisted before the kernel
is touched, then converged and verified.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from controller import load, observe
from controller.blame import blamed
from controller.desired import desired_resources
from controller.dns.hook import DnsHook
from controller.documents import build, merge, require_cluster_store
from controller.errors import (
    ApplyError,
    ConflictError,
    NetctlError,
    NotFoundError,
)
from controller.execute import Report, execute
from controller.firewall import backend as firewall
from controller.firewall.wanted import BACKENDS, DEFAULT
from controller.hooks import Hook
from controller.kernel.netns import Sockets
from controller.model import Action, Document, Kind, Observed, Op, Plan, Resource, Target
from controller.plan import diff_attrs, plan
from controller.resolve import resolve
from controller.scope import Scope, restrict, veth_peers
from controller.store import Store, locked

if TYPE_CHECKING:
    from controller.cluster.config import ClusterConfig
    from controller.cluster.session import ClusterSession

log = structlog.get_logger("netctl")

BUILTIN_NETWORKS = ("bridge", "host", "none")
FIREWALL_ENV = "NETCTL_FIREWALL_BACKEND"  # set by --firewall-backend
FIREWALL_SETTING = "firewall_backend"
FORWARDING_SETTING = "forwarding_enabled"  # families netctl turned IP forwarding on for


def now() -> str:
    """RFC 3339 with nanoseconds, in UTC, as Docker's `Created`."""
    ns = time.time_ns()
    seconds = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    return f"{seconds:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


@dataclass
class Outcome:
    plan: Plan
    target: Target
    observed: Observed
    report: Report | None = None
    notes: list[str] = field(default_factory=list)
    wanted: tuple[Resource, ...] = ()  # every target resource (not only the scope's)
    namespaces: frozenset[str] | None = None  # the containers observed; None: all of them


@dataclass
class Session:
    """An open state directory and netlink sockets, for one command."""

    state_dir: str
    lock_timeout: float = 30.0
    progress: Callable[[Plan], Callable[[Action], None] | None] | None = None
    store_config: ClusterConfig | None = None  # --cluster-store: overlay networks

    def __post_init__(self) -> None:
        self._rolling_back = False
        self.store = Store(self.state_dir)
        self.sockets = Sockets()
        # The pipeline's collaborators, in the order they are called (hooks.py).
        self.hooks: list[Hook] = [DnsHook(self.state_dir)]
        self.store_hook: ClusterSession | None = None
        if self.store_config is not None:  # imported only then: most commands never need it
            from controller.cluster.session import ClusterSession

            self.store_hook = ClusterSession(self.store_config, self.state_dir, self.sockets)
            self.hooks.append(self.store_hook)

    def close(self) -> None:
        for hook in self.hooks:
            hook.close()
        self.sockets.close()
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def apply(self, documents: Sequence[Document], origin: str = "apply", dry_run: bool = False) -> Outcome:
        require_cluster_store(documents, self._has_store())
        with locked(self.state_dir, self.lock_timeout):
            return self.converge(merge(self.store.documents(), documents), origin, documents, dry_run)

    def delete(
        self, keys: Sequence[tuple[str, str]], dry_run: bool = False, missing_ok: bool = False
    ) -> Outcome:
        with locked(self.state_dir, self.lock_timeout):
            stored = self.store.documents()
            present = {(d.kind, d.name) for d in stored}
            for hook in self.hooks:  # an overlay network is removed from any host
                present |= hook.stored_elsewhere()
            for kind, name in keys:
                if kind == "Network" and name in BUILTIN_NETWORKS:
                    raise ConflictError(f"{name} is a pre-defined network and cannot be removed")
                if (kind, name) not in present and not missing_ok:
                    raise NotFoundError(f"no {kind.lower()} named {name!r}")
            remaining = [d for d in stored if (d.kind, d.name) not in set(keys)]
            _refuse_networks_in_use(keys, remaining, self.store)
            if not dry_run:
                for hook in self.hooks:
                    hook.removing_networks([n for k, n in keys if k == "Network"])
            return self.converge(remaining, "apply", [], dry_run)

    def current(self) -> Outcome:
        """The plan that would bring the kernel back to what was applied: drift."""
        with locked(self.state_dir, self.lock_timeout):
            return self.converge(self.store.documents(), "apply", [], dry_run=True)

    def edit(self, change: Callable[[list[Document]], list[Document]], dry_run: bool = False) -> Outcome:
        """Imperative commands (network connect/disconnect): rewrite stored documents."""
        with locked(self.state_dir, self.lock_timeout):
            return self.converge(change(self.store.documents()), "cli", [], dry_run)

    def replace_origin(
        self, origin: str, documents: Sequence[Document], scope: Scope | None = None
    ) -> Outcome:
        """The controller's reconcile: the documents of `origin` become exactly `documents`
        (objects no longer there are pruned); other origins' documents (`netctl apply`, CLI
        commands) are kept. An object both declare is taken over by `origin`: the watched
        folder is authoritative for the names it declares."""
        require_cluster_store(documents, self._has_store())
        with locked(self.state_dir, self.lock_timeout):
            origins = self.store.origins()
            kept = [d for d in self.store.documents() if origins.get((d.kind, d.name)) != origin]
            return self.converge(merge(kept, documents), origin, documents, False, scope)

    # ------------------------------------------------------------------ the pipeline

    def _roll_back(
        self, exc: ApplyError, before: list[tuple[object, ...]],
        documents: Sequence[Document], changed: Sequence[Document], target: Target,
    ) -> ApplyError:
        """The kernel refused part of a change: take the change out of the desired state and
        converge back to the documents stored before it, so that one bad document does not
        fail every later apply (allocations made meanwhile are kept: they are only claims)."""
        self.store.restore_documents(before)
        stored = self.store.documents()
        kept = {(d.kind, d.name, json.dumps(d.body, sort_keys=True)) for d in stored}
        change = list(changed) or [
            d for d in documents if (d.kind, d.name, json.dumps(d.body, sort_keys=True)) not in kept
        ]
        culprits = blamed(exc.key, target, documents, change)
        self._rolling_back, progress, self.progress = True, self.progress, None
        try:
            self.converge(stored, "apply", [], False)
            result = "rolled back: nothing of this change was applied"
        except NetctlError as again:
            result = f"rolling back failed too ({again}); the next apply or reconcile retries"
        finally:
            self._rolling_back, self.progress = False, progress
        where = ", ".join(f"{d.source} ({d.kind} {d.name})" for d in culprits[:3])
        more = f" and {len(culprits) - 3} more" if len(culprits) > 3 else ""
        detail = f"{exc}; {result}"
        error = ApplyError(f"{where}{more}: {detail}" if where else detail, key=exc.key)
        error.files = tuple((d.source.file, d.source.line) for d in culprits)
        error.detail = detail
        return error

    def _observe(
        self, names: Collection[str], sysctls: Sequence[str], rules: bool = True, services: bool = True
    ) -> Observed:
        """The kernel's state, and the hooks' services (the DNS server) if the target has
        any: one no longer needed stops by itself, there is nothing to plan for it."""
        seen = observe.observe(self.sockets, names, sysctls, rules)
        if not services:
            return seen
        return Observed((*seen.resources, *(r for h in self.hooks for r in h.observed())))

    def _firewall(self) -> firewall.Backend:
        """The backend in use: --firewall-backend ($NETCTL_FIREWALL_BACKEND), else the one the
        state was last converged with, else iptables. Another one than the state's is a
        migration: the old backend's rules are read too, so that the plan removes them in
        the same apply that installs the new ones."""
        stored = self.store.setting(FIREWALL_SETTING)
        name = os.environ.get(FIREWALL_ENV) or stored or DEFAULT
        previous = [stored] if stored else [b for b in BACKENDS if b != name]
        forwarding = (self.store.setting(FORWARDING_SETTING) or "").split()
        return firewall.select(name, previous, forwarding, Path(self.state_dir))

    def _firewall_converged(self, backend: firewall.Backend) -> None:
        if self.store.setting(FIREWALL_SETTING) != backend.name:
            self.store.set_setting(FIREWALL_SETTING, backend.name)

    def _remember_forwarding(self) -> None:
        """The families netctl turned forwarding on for, kept even when the apply failed
        after turning it on (a migration moves the FORWARD policy that goes with it)."""
        families = " ".join(sorted(firewall.netctl_enabled_forwarding()))
        if families != (self.store.setting(FORWARDING_SETTING) or ""):
            self.store.set_setting(FORWARDING_SETTING, families)

    def _has_store(self) -> bool:
        return any(h.has_store() for h in self.hooks)

    def _converged(self, target: Target) -> None:
        remote = [n for h in self.hooks for n in h.remote_names()]
        for hook in self.hooks:
            hook.converged(target, remote)

    def _verified(self, target: Target) -> None:
        for hook in self.hooks:
            hook.verified(target)

    def converge(
        self,
        documents: list[Document],
        origin: str,
        changed: Sequence[Document],
        dry_run: bool,
        scope: Scope | None = None,
    ) -> Outcome:
        for hook in self.hooks:  # the cluster's overlay networks join this host's documents
            documents = hook.documents(documents, self.store.origins(), changed)
        spec = build(documents)
        facts = observe.host_facts(self.sockets)
        when = now()
        allocations = self.store.allocations()
        for hook in self.hooks:  # overlay IDs, VNIs, subnets, addresses: claimed in etcd
            spec, allocations = hook.allocate(documents, changed, spec, allocations, facts, when, dry_run)
        target, allocations = resolve(spec, allocations, facts, when)  # ResolveError: the user's
        backend = self._firewall()
        wanted = (*desired_resources(target, backend.name),
                  *(r for h in self.hooks for r in h.wanted(target)))
        target_ns = {c.netns for c in target.containers if c.netns}
        owned = self.store.owned_netns()
        before: list[tuple[object, ...]] | None = None
        if not dry_run:
            before = self.store.documents_snapshot()
            origins = self.store.origins()
            origins.update({(d.kind, d.name): origin for d in changed})
            for hook in self.hooks:
                origins.update(hook.origins())
            self.store.save(documents, origins, allocations, target_ns, when)
            for hook in self.hooks:
                hook.before_kernel(target)
        sysctls = [r.attrs["name"] for r in wanted if r.kind is Kind.SYSCTL]
        everything, names = wanted, owned | target_ns
        if scope is not None:
            names = set(scope.namespaces(wanted, names))
            peers = veth_peers([*wanted, *scope.previous.values()])
        services = any(r.kind is Kind.SERVICE for r in wanted)
        seen = self._observe(names, sysctls, services=services)
        for hook in self.hooks:  # FDB/neighbour entries for remote endpoints
            hooked, seen = hook.with_peers(target, wanted, seen)
            wanted = tuple(hooked)
        if scope is not None:
            wanted, seen = restrict(wanted, names, peers), Observed(restrict(seen.resources, names, peers))
        the_plan = plan(wanted, seen)
        outcome = Outcome(the_plan, target, seen, wanted=everything,
                          namespaces=None if scope is None else frozenset(names))
        gone = (owned - target_ns) & names  # a scoped reconcile forgets only what it deleted
        if dry_run or not the_plan.empty:
            outcome.notes.extend(backend.coexistence())
        if dry_run or the_plan.empty:
            if not dry_run:
                self.store.forget_netns(gone)
                self._firewall_converged(backend)
                self._converged(target)
                self._verified(target)
            return outcome
        callback = self.progress(the_plan) if self.progress else None
        try:
            try:
                outcome.report = execute(the_plan, self.sockets, callback)
            finally:
                self._remember_forwarding()
            self._converged(target)  # DNS: names published (remote ones too), server (re)started
            rules_changed = any(firewall.is_rule(a.resource.kind) for a in the_plan.actions)
            verify(the_plan, self._observe(touched_netns(the_plan), sysctls, rules_changed, services))
        except ApplyError as exc:
            if before is None or self._rolling_back:
                raise
            raise self._roll_back(exc, before, documents, changed, target) from exc
        self.store.forget_netns(gone)
        self._firewall_converged(backend)
        self._verified(target)  # the cluster: this host's endpoints, once the kernel has them
        return outcome


def _refuse_networks_in_use(
    keys: Sequence[tuple[str, str]], remaining: Sequence[Document], store: Store
) -> None:
    doomed = {name for kind, name in keys if kind == "Network"}
    if not doomed:
        return
    ids = store.allocations().ids
    for doc in remaining:
        if doc.kind != "Container":
            continue
        for net in (a.network for a in load.container_spec(doc).networks):
            if net in doomed:
                net_id = ids.get(("network", net), "")
                raise ConflictError(
                    f"error while removing network: network {net} id {net_id} has active "
                    f"endpoints (container {doc.name})"
                )


def touched_netns(p: Plan) -> set[str]:
    """The containers whose namespace or files the plan changes: what verify must re-read."""
    out = set()
    for a in p.actions:
        r = a.resource
        if r.kind is Kind.NETNS:
            out.add(r.attrs["name"])
        elif r.kind is Kind.FILE:
            out.add(os.path.basename(os.path.dirname(r.attrs["path"])))  # /etc/netns/<name>/...
        elif r.netns or r.attrs.get("peer_netns"):
            out.add(r.netns or r.attrs["peer_netns"])
    return out


def verify(p: Plan, after: Observed) -> None:
    """Re-read the kernel: every created or updated resource is there as planned, every
    deleted one is gone. Report what did not converge, attribute by attribute."""
    seen = after.by_key()
    recreated = {a.resource.key for a in p.actions if a.op is not Op.DELETE}
    problems = []
    for a in p.actions:
        r = a.resource
        have = seen.get(r.key)
        if r.kind is Kind.SERVICE:
            continue  # a service that does not come up is logged (by its hook), not undone
        if a.op is Op.DELETE:
            if have is not None and r.key not in recreated:
                problems.append(f"- {r.key}: still present")
        elif have is None:
            problems.append(f"+ {r.key}: missing after apply")
        else:
            problems.extend(
                f"~ {r.key}: {c.name} is {c.old!r}, wanted {c.new!r}" for c in diff_attrs(have, r)
            )
    if problems:
        raise ApplyError("the kernel did not converge:\n  " + "\n  ".join(problems))


def keys_of(documents: Sequence[Document]) -> list[tuple[str, str]]:
    return [(d.kind, d.name) for d in documents]


__all__ = ["Outcome", "Resource", "Scope", "Session", "build", "merge", "verify"]
