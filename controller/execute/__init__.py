"""Plan -> kernel: run each action through the backend for its kind.

Work is batched where the kernel allows it: every veth the plan deletes goes in one netlink
message (interface group delete), firewall tables are restored once each. Every action is
logged with its duration; `progress` is called after each one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from controller import failpoints
from controller.errors import ApplyError
from controller.execute import files, firewall, sysctl
from controller.kernel.netns import Sockets
from controller.model import Action, Kind, Op, Plan

if TYPE_CHECKING:
    from controller.execute.netlink import NetlinkBackend
    from controller.execute.overlay import OverlayBackend

log = structlog.get_logger("netctl.execute")



@dataclass
class Report:
    done: list[Action] = field(default_factory=list)
    seconds: float = 0.0
    processes: int = 0  # subprocesses spawned (iptables-restore)


def execute(
    plan: Plan,
    sockets: Sockets,
    progress: Callable[[Action], None] | None = None,
) -> Report:
    links = _Links(sockets)
    report = Report()
    start = time.perf_counter()
    veth_deletes = [a for a in plan.actions if a.op is Op.DELETE and a.resource.kind is Kind.VETH]
    in_batch = {id(a) for a in veth_deletes}
    batched = False
    rules = [a for a in plan.actions if firewall.is_rule(a.resource.kind)]
    rules_done = False
    for action in plan.actions:
        t0 = time.perf_counter()
        try:
            if id(action) in in_batch:
                if not batched:
                    links.backend().delete_links_at_once([a.resource.attrs["name"] for a in veth_deletes])
                    batched = True
            elif firewall.is_rule(action.resource.kind):
                # All rule changes at once, one iptables-restore per table, when the first is due.
                if not rules_done:
                    report.processes += firewall.apply_rules(rules)
                    rules_done = True
            elif action.resource.kind is Kind.SYSCTL:
                sysctl.apply_sysctl(action)
            elif action.resource.kind is Kind.FILE:
                files.apply(action)
            elif action.resource.kind is Kind.SERVICE:
                pass  # the pipeline (re)starts services once the kernel is converged
            else:
                links.apply(action)
        except Exception as exc:  # a kernel or file error: report which action failed
            log.error("action failed", op=action.op.value, resource=action.resource.key, error=str(exc))
            raise ApplyError(
                f"{action.op.value} {action.resource.key} failed: {exc}", key=action.resource.key
            ) from exc
        ms = round((time.perf_counter() - t0) * 1000, 3)
        if firewall.is_rule(action.resource.kind) and action is not rules[0]:
            # done by the first one's transaction: a line each would be thousands (ports' elements)
            log.debug("action", op=action.op.value, resource=action.resource.key, ms=ms)
        else:
            extra = {"batch": len(rules)} if rules and action is rules[0] and len(rules) > 1 else {}
            log.info("action", op=action.op.value, resource=action.resource.key, ms=ms, **extra)
        report.done.append(action)
        failpoints.hit("action")
        if progress is not None:
            progress(action)
    report.seconds = time.perf_counter() - start
    return report


class _Links:
    """Links, addresses, routes and overlays through pyroute2, made on first use: pyroute2
    takes ~0.2 s to import, which a plan of firewall elements and files never needs."""

    def __init__(self, sockets: Sockets) -> None:
        self.sockets = sockets
        self._backend: NetlinkBackend | None = None
        self._overlays: OverlayBackend | None = None

    def backend(self) -> NetlinkBackend:
        if self._backend is None:
            from controller.execute.netlink import NetlinkBackend

            self._backend = NetlinkBackend(self.sockets)
        return self._backend

    def apply(self, action: Action) -> None:
        from controller.execute import overlay

        if not overlay.handles(action.resource.kind):
            self.backend().apply(action)
            return
        if self._overlays is None:
            self._overlays = overlay.OverlayBackend(self.sockets, self.backend().index)
        self._overlays.apply(action)
