"""`netctl controller --manifests DIR`: keep the kernel equal to a folder of manifests.

    events (folder, netlink, /etc/netns, /run/netns, signals) ──▶ Inbox ──▶ main thread
        Scheduler (debounce, echo window, resync timer, retries) ──▶ Work ──▶ reconcile

One reconcile: scan the folder (only changed, complete files are parsed), choose per file
its documents or its last good ones, and hand them to `Session.replace_origin` with a
`Scope` (the containers whose target changed, plus those where drift was seen; all of them
at startup, on resync and on SIGHUP). The state lock is taken for that call only, so
`netctl apply` from a shell works while the controller runs.

- Invalid input never breaks what works: a file that fails validation, or two files that
  conflict, are reported (log, `netctl status`) and their objects keep their last good
  state; the others are reconciled. Invalid input is not retried until it changes.
- A failing kernel action is blamed on its container when it has one: that container waits
  for its retry (exponential backoff) and the reconcile runs again without it, so unrelated
  objects converge. Other failures retry the whole reconcile with backoff.
- Drift (a kernel change nobody asked for) is repaired by the same reconcile and logged with
  what drifted; our own changes echo back as events and are not counted as drift.
- SIGTERM/SIGINT stop the watch and leave the network as it is; SIGHUP forces a full
  resync. One controller per state directory (`controller.lock`).

Hook for the embedded DNS server (controller/dns): append a callable to
`Controller.after_reconcile`; it is called with the new Target after every successful
reconcile, in the main thread, and should return quickly (start/stop/reload its servers).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from controller import etcfiles
from controller.api import server as api_server
from controller.api.docker import DockerApi
from controller.daemon.events import (
    Event,
    FolderChanged,
    FolderHandler,
    Inbox,
    KernelChanged,
    NetlinkListener,
    NetnsFilesHandler,
    Resync,
    ServiceWatcher,
    Stop,
)
from controller.daemon.folder import (
    Folder,
    FolderMissing,
    Selection,
    Snapshot,
    by_file,
    implicated,
    is_manifest,
    select,
)
from controller.daemon.metrics import Metrics, serve
from controller.daemon.schedule import (
    EVERYTHING,
    HOST,
    Clock,
    Failure,
    Permanent,
    Scheduler,
    Temporary,
    Timing,
    Work,
)
from controller.daemon.status import Round, StatusBook, describe, drift, repaired_objects
from controller.errors import LockError, ManifestError, NetctlError, Problem, UserError
from controller.kernel import fds, netns
from controller.model import Action, Document, Kind, Plan, Resource, Target
from controller.pipeline import Outcome, Session, now
from controller.scope import Scope, owner_ns, veth_peers
from controller.store import private_dir

log = structlog.get_logger("netctl.controller")

API_SOCKET = "api.sock"  # in the state dir, unless --api-socket says otherwise
MAX_ATTEMPTS = 16  # per reconcile: each one reverts files or sets a failing container aside
LOCK_RETRY = 0.5  # seconds: a `netctl apply` from a shell holds the state lock
LOCK_WAIT = 2.0  # at most, per attempt: signals and drift must not wait behind a long apply


@dataclass(frozen=True)
class Options:
    manifests: str
    state_dir: str
    resync_interval: float = 30.0
    metrics_address: str | None = None
    lock_timeout: float = 10.0
    timing: Timing | None = None
    cluster_config: Any = None  # controller.cluster.config.ClusterConfig: overlay networks
    api_socket: str | None = None  # the API's unix socket; None: api.sock in the state dir
    api_group: str | None = None  # the group that may connect to it (None: root's)
    version: str = "unknown"  # netctl's, for the API's /version


# --------------------------------------------------------------------------- the process


def run(options: Options) -> int:
    """The long-running controller; returns the exit code once stopped by a signal."""
    root = os.path.abspath(options.manifests)
    if not os.path.isdir(root):
        raise UserError(f"--manifests {options.manifests}: no such directory")
    with controller_lock(options.state_dir, root):
        fds.raise_limit()  # a netlink socket per namespace to listen, one to act
        session = Session(
            options.state_dir, min(options.lock_timeout, LOCK_WAIT), store_config=options.cluster_config
        )
        try:
            return Controller(options, session).serve()
        finally:
            session.close()


def lock_path(state_dir: str) -> str:
    return os.path.join(state_dir, "controller.lock")


@contextmanager
def controller_lock(state_dir: str, root: str) -> Iterator[None]:
    """One controller per state directory, for its whole life (the state lock is separate:
    it is taken for each reconcile only). The file goes with the controller that held it:
    a stopped controller leaves nothing in the state directory but the store."""
    private_dir(state_dir)
    path = lock_path(state_dir)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").split("\n")[0] or "?"
            os.close(fd)
            raise LockError(f"another controller (pid {holder}) runs on {state_dir}") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its holder had just removed on the way out: again
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{root}\n".encode(), 0)
        yield
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still holding it: no other controller has it meanwhile
    finally:
        os.close(fd)


def controller_running(state_dir: str) -> tuple[int, str] | None:
    """(pid, manifests folder) of the controller running on this state directory, if any."""
    try:
        fd = os.open(lock_path(state_dir), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, root = os.pread(fd, 4096, 0).decode(errors="replace").partition("\n")
            return (int(pid) if pid.isdigit() else 0, root.strip())
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) where we are; nothing without $NOTIFY_SOCKET."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.send(state.encode())


# --------------------------------------------------------------------------- the controller


class Tracker:
    """Which action a failed execute stopped at, and what the reconcile executed overall
    (execute calls the progress callback after each action it completed)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.executed: list[Action] = []
        self.first_start: float | None = None
        self._plan: Plan | None = None
        self._done = 0

    def new_round(self) -> None:
        self.executed, self.first_start = [], None
        self.new_attempt()

    def new_attempt(self) -> None:
        self._plan, self._done = None, 0

    def start(self, plan: Plan) -> Callable[[Action], None]:
        self._plan, self._done = plan, 0
        if self.first_start is None:
            self.first_start = self.clock()
        return self._step

    def _step(self, action: Action) -> None:
        self._done += 1
        self.executed.append(action)

    def failing(self) -> Action | None:
        if self._plan is None or self._done >= len(self._plan.actions):
            return None
        return self._plan.actions[self._done]


@dataclass
class Result:
    """How one reconcile ended, for status, metrics and logs."""

    outcome: Outcome | None = None
    failure: Failure | None = None
    set_aside: dict[str, str] = field(default_factory=dict)  # namespace -> why it failed
    busy: bool = False  # the state lock was held by another netctl: nothing was tried


class Controller:
    def __init__(
        self,
        options: Options,
        session: Session,
        clock: Clock = time.monotonic,
        inbox: Inbox | None = None,
    ) -> None:
        self.options = options
        self.session = session
        self.clock = clock
        self.inbox = inbox or Inbox()
        self.timing = options.timing or Timing(resync=options.resync_interval)
        self.folder = Folder(options.manifests)
        self.origin = f"controller:{self.folder.root}"
        self.scheduler = Scheduler(self.timing, started=clock())
        self.metrics = Metrics()
        self.tracker = Tracker(clock)
        session.progress = self.tracker.start
        origins = session.store.origins()
        ours = [d for d in session.store.documents() if origins.get((d.kind, d.name)) == self.origin]
        self.last_good: dict[str, tuple[Document, ...]] = by_file(ours)  # adopted after a restart
        self.previous: dict[str, Resource] = {}  # the target of the last successful reconcile
        self.fingerprint: object = None  # the folder as last reconciled
        self.snapshot: Snapshot | None = None  # the folder as last scanned
        self.writing: dict[str, float] = {}  # manifests modified and not closed yet
        self.triggers: dict[str, list[str]] = {}  # namespace -> kernel changes seen, for the log
        self.rejected: dict[str, list[str]] = {}  # file -> problems already logged
        self.book = StatusBook(session.store.status_rows())
        self.listener: NetlinkListener | None = None
        self.services: ServiceWatcher | None = None
        self.observer: Any = None  # watchdog's Observer, once serving
        self.watched: tuple[Any, int] | None = None  # the folder's watch and the inode it follows
        self.stopping = False
        self.missing = False  # the folder was missing at the last scan
        self.reconciles = 0
        self.after_reconcile: list[Callable[[Target], None]] = []  # the DNS server's hook

    # ------------------------------------------------------------------ the loop

    def serve(self) -> int:
        from watchdog.observers import Observer

        for folder in (etcfiles.ETC_NETNS, netns.NETNS_RUN_DIR):
            os.makedirs(folder, exist_ok=True)
        observer = self.observer = Observer()
        self._watch_folder()
        files = NetnsFilesHandler(self.inbox.post, etcfiles.ETC_NETNS, netns.NETNS_RUN_DIR, self.clock)
        observer.schedule(files, etcfiles.ETC_NETNS, recursive=True)
        observer.schedule(files, netns.NETNS_RUN_DIR, recursive=False)
        observer.start()
        self.listener = NetlinkListener(self.inbox.post, self.clock)
        self.listener.start()
        self.services = ServiceWatcher(self.inbox.post, self.options.state_dir, self.clock)
        self.services.start()
        server = serve(self.metrics, self.options.metrics_address) if self.options.metrics_address else None
        api = self._serve_api()
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, lambda n, _: self.inbox.post(Stop(n))),
            signal.SIGINT: signal.signal(signal.SIGINT, lambda n, _: self.inbox.post(Stop(n))),
            signal.SIGHUP: signal.signal(signal.SIGHUP, lambda n, _: self.inbox.post(Resync(n))),
        }
        ready = False
        log.info("controller started", manifests=self.folder.root, state_dir=self.options.state_dir,
                 resync_interval=self.timing.resync, metrics=self.options.metrics_address, pid=os.getpid())
        try:
            while not self.stopping:
                self.step()
                if self.reconciles and not ready:
                    ready = True
                    sd_notify("READY=1")
        finally:
            sd_notify("STOPPING=1")
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            observer.stop()
            observer.join(timeout=5)
            self.listener.stop()
            self.services.stop()
            if server is not None:
                server.shutdown()
                server.server_close()
            api_server.close(api)
            log.info("controller stopped: the network is left as it is")
        return 0

    def _serve_api(self) -> Any:
        """The Docker Engine API's network endpoints on a unix socket (api/docker.py): each
        request runs in its own session, waiting for the state lock like a `netctl` command."""
        path = self.options.api_socket or os.path.join(self.options.state_dir, API_SOCKET)
        o = self.options

        def session() -> Session:
            return Session(o.state_dir, o.lock_timeout, store_config=o.cluster_config)

        server = api_server.serve(path, DockerApi(session, o.version), o.api_group)
        log.info("api serving", socket=path, group=o.api_group or "root")
        return server

    def _watch_folder(self) -> None:
        """Watch the folder, again if it was replaced (`rm -rf` and `git clone`, a symlink
        swapped): inotify follows the old directory, which no longer changes."""
        if self.observer is None:
            return
        try:
            inode = os.stat(self.folder.root).st_ino
        except OSError:
            return  # missing: the next reconcile tries again
        if self.watched is not None:
            if self.watched[1] == inode:
                return
            with contextlib.suppress(KeyError, OSError):
                self.observer.unschedule(self.watched[0])
            log.info("manifests folder replaced: watching the new one", manifests=self.folder.root)
        handler = FolderHandler(self.inbox.post, self.clock)
        self.watched = (self.observer.schedule(handler, self.folder.root, recursive=True), inode)

    def step(self, max_wait: float = 1.0) -> None:
        """Run the work that is due, else wait for an event (at most `max_wait` seconds)."""
        now = self.clock()
        work = self.scheduler.take(now)
        if work is not None:
            self.reconcile(work)
        else:
            deadline = self.scheduler.next_deadline()
            wait = max_wait if deadline is None else min(max(deadline - now, 0.0), max_wait)
            event = self.inbox.get(wait)
            if event is not None:
                self.handle(event)
        while (event := self.inbox.get(0)) is not None:
            self.handle(event)

    def handle(self, event: Event) -> None:
        if isinstance(event, FolderChanged):
            self._folder_changed(event)
        elif isinstance(event, KernelChanged):
            ns = event.netns or HOST
            if event.what == "namespace deleted" and self.listener is not None and event.netns:
                self.listener.forget(event.netns)  # our socket must not keep the old one alive
            seen = self.triggers.setdefault(ns, [])
            if len(seen) < 8:
                seen.append(event.what)
            self.scheduler.kernel_changed(event.at, ns)
        elif isinstance(event, Resync):
            log.info("full resync requested", signal=signal.Signals(event.signum).name)
            self.scheduler.full_resync("signal")
        elif isinstance(event, Stop):
            log.info("stopping", signal=signal.Signals(event.signum).name)
            self.stopping = True

    def _folder_changed(self, e: FolderChanged) -> None:
        if e.change == "modified" and is_manifest(self.folder.root, e.path):
            self.writing[e.path] = e.at  # wait for it to be closed
            self.scheduler.files_changed(e.at, complete=False)
            return
        for path in (e.path, e.dest):
            if e.change in ("closed", "deleted", "moved"):
                self.writing.pop(path, None)
        self.scheduler.files_changed(e.at)

    # ------------------------------------------------------------------ one reconcile

    def reconcile(self, work: Work) -> None:
        start, when = self.clock(), now()
        self._watch_folder()
        snapshot = self._scan() if work.read_folder else None
        folder_changed = snapshot is not None and snapshot.fingerprint != self.fingerprint
        if not (folder_changed or work.everything or work.namespaces):
            return  # events in the folder, but no manifest changed
        if snapshot is not None:
            # Seen, whatever comes of it: a failure is retried by its backoff, not taken for
            # new input at every retry (which reset the backoff to 1 s).
            self.fingerprint = snapshot.fingerprint
        if folder_changed:
            self.scheduler.input_changed()  # new input: what failed may work now
            work = Work(work.read_folder, work.everything, work.namespaces, frozenset(), work.reasons)
        if snapshot is not None:
            self.snapshot = snapshot
            self._watch_folder()  # it may be a new folder under the same name
        # Without a new scan, the folder is as last scanned (its bad files still bad).
        known = snapshot or self.snapshot
        selection = select(known, self.last_good) if known is not None else Selection(dict(self.last_good))
        result = self._attempts(work, selection)
        end = self.clock()
        if self.tracker.first_start is not None:
            self.scheduler.executed(self.tracker.first_start, end)
        self._conclude(work, selection, snapshot, result, when, start, end)

    def _scan(self) -> Snapshot | None:
        now_ = self.clock()
        incomplete = {p for p, t in self.writing.items() if now_ - t < self.timing.write_timeout}
        try:
            snapshot = self.folder.scan(incomplete)
        except FolderMissing as exc:
            if not self.missing:
                log.error("manifests folder missing: nothing is pruned", error=str(exc))
            self.missing = True
            self.scheduler.files_changed(now_ + 1.0)  # no inotify on what is not there: look again
            return None
        if self.missing:
            log.info("manifests folder back", manifests=self.folder.root)
            self.missing = False
        return snapshot

    def _attempts(self, work: Work, selection: Selection) -> Result:
        """replace_origin until it succeeds: each failure reverts the files it blames to their
        last good documents, or sets the container of a failing action aside."""
        self.tracker.new_round()
        skip = set(work.skip)
        # Containers not converged last time are read again: a file fixed back to its last
        # good content changes no target, yet their state must be checked to be reported.
        rows = self.book.rows.items()
        unsettled = {n for (k, n), row in rows if k == "Container" and row.state != "converged"}
        also = frozenset((work.namespaces | unsettled) - {HOST})
        result = Result()
        for _ in range(MAX_ATTEMPTS):
            scope = Scope(self.previous, also, work.everything or not self.previous, frozenset(skip))
            self.tracker.new_attempt()
            try:
                result.outcome = self.session.replace_origin(self.origin, selection.documents(), scope)
                return result
            except ManifestError as exc:
                if not self._revert(selection, exc.problems):
                    result.failure = Permanent(str(exc))
                    return result
            except UserError as exc:
                if not self._revert(selection, [Problem("", 0, "", str(exc))]):
                    result.failure = Permanent(str(exc))
                    return result
            except LockError as exc:
                result.failure, result.busy = Temporary(str(exc), delay=LOCK_RETRY), True
                return result
            except Exception as exc:  # the kernel, the state, or a bug: retried
                if not isinstance(exc, NetctlError | OSError | NetlinkError):
                    log.exception("unexpected error in reconcile")
                ns = self._blame(self.tracker.failing())
                if not ns or ns in skip:
                    # No container to set aside (a bridge, a firewall table): a changed file the
                    # error names is held at its last good state, the rest goes on.
                    detail = getattr(exc, "detail", str(exc))
                    blamed = [Problem(f, line, "", detail) for f, line in getattr(exc, "files", ())]
                    if blamed and self._revert(selection, blamed, only_named=True):
                        continue
                    result.failure = Temporary(f"{type(exc).__name__}: {exc}")
                    return result
                result.set_aside[ns] = str(exc)
                skip.add(ns)
            finally:
                self.session.sockets.close()  # one socket per namespace: not kept between reconciles
        result.failure = Temporary("too many failures in one reconcile")
        return result

    def _revert(self, selection: Selection, problems: Sequence[Problem], only_named: bool = False) -> bool:
        """Blame files for these problems and apply their last good documents instead. The
        files a problem names are all reported; only those that changed can be reverted
        (reverting changes nothing otherwise); `only_named`: not the other changed files
        either. False: nothing left to revert."""
        files = selection.chosen.keys() | self.last_good.keys()
        named = implicated(problems, files)
        changed = selection.changed(self.last_good)
        texts = [str(p) if p.file else p.message for p in problems]
        culprits = {f for f in named if f in changed} or (set() if only_named else changed)
        if not culprits:
            return False
        for path in culprits:
            selection.revert([path], self.last_good, named.get(path, texts))
        for path in named.keys() - culprits:  # the other side of a conflict: reported, kept
            selection.failed.setdefault(path, [])
            selection.failed[path] += [t for t in named[path] if t not in selection.failed[path]]
        return True

    def _blame(self, action: Action | None) -> str | None:
        if action is None:
            return None
        return owner_ns(action.resource, veth_peers([*self.previous.values(), action.resource]))

    # ------------------------------------------------------------------ after a reconcile

    def _conclude(
        self, work: Work, selection: Selection, snapshot: Snapshot | None, result: Result,
        when: str, start: float, end: float,
    ) -> None:
        seconds = end - start
        self.reconciles += 1
        outcome = result.outcome
        for ns, reason in result.set_aside.items():
            due = self.scheduler.failed(end, ns, Temporary(reason))
            log.error("container failed, others continue", netns=ns, error=reason,
                      retry_in=round((due or end) - end, 3))
            self.metrics.inc("netctl_failures_total", kind="temporary")
        if outcome is None:
            assert result.failure is not None
            due = self.scheduler.failed(end, EVERYTHING, result.failure)
            kind = "permanent" if isinstance(result.failure, Permanent) else "temporary"
            log.error("reconcile failed", error=result.failure.reason, kind=kind,
                      retry_in=None if due is None else round(due - end, 3), reasons=sorted(work.reasons))
            self.metrics.inc("netctl_reconciles_total", result="failed")
            self.metrics.inc("netctl_failures_total", kind=kind)
            reason = result.failure.reason.splitlines()[0]
            if due is not None:
                reason += f" (retrying in {due - end:.1f}s)"
            if not result.busy:
                self._record(Round(when, seconds, self._documents(), None, {},
                                   everything_failed=reason, bad_files=selection.failed))
            return
        self.scheduler.succeeded(
            {EVERYTHING, *work.namespaces} - set(result.set_aside)
        )
        scope = outcome.namespaces
        executed = self.tracker.executed
        repaired = drift(executed, self.previous)
        set_aside = set(result.set_aside) | set(work.skip)
        self.previous = _next_previous(self.previous, outcome.wanted, set_aside)
        self.last_good = dict(selection.chosen)
        self._log_files(selection)
        self._log(work, outcome, executed, repaired, seconds)
        self.triggers.clear()
        target = outcome.target
        netns_of = {c.name: c.netns for c in target.containers}
        failed = {("Container", c.name): f"failed: {result.set_aside[c.netns]} (retrying)"
                  for c in target.containers if c.netns in result.set_aside}
        failed.update(self._file_failures(selection))
        pending = {
            (d.kind, d.name): f"{os.path.relpath(p, self.folder.root)} is being written"
            for p in selection.pending for d in selection.chosen[p]
        }
        self._record(Round(
            when, seconds, self._documents(), scope, netns_of, failed, pending,
            repaired_objects(repaired, target, outcome.wanted), selection.failed,
        ))
        self._metrics(outcome, executed, repaired, seconds, selection)
        if self.listener is not None:
            self._listen(target, outcome.wanted)
        if self.services is not None:
            self.services.watch(any(r.kind is Kind.SERVICE for r in outcome.wanted))
        for hook in self.after_reconcile:
            try:
                hook(target)
            except Exception:
                log.exception("after-reconcile hook failed")

    def _file_failures(self, selection: Selection) -> dict[tuple[str, str], str]:
        """Objects of files that failed and are held at their last good state."""
        out = {}
        for path in selection.held:
            problems = selection.failed.get(path) or ["rejected"]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            for d in selection.chosen.get(path, ()):
                out[(d.kind, d.name)] = f"{problems[0]}{more}; last good state kept"
        return out

    def _documents(self) -> list[tuple[Document, str]]:
        origins = self.session.store.origins()
        return [(d, origins.get((d.kind, d.name), "apply")) for d in self.session.store.documents()]

    def _record(self, r: Round) -> None:
        put, drop = self.book.apply(r)
        try:
            if put:
                self.session.store.put_status(put)
            if drop:
                self.session.store.drop_status(drop)
        except Exception as exc:  # status is for people: never stop reconciling for it
            log.warning("cannot write status", error=str(exc))

    def _listen(self, target: Target, wanted: Sequence[Resource]) -> None:
        assert self.listener is not None
        host: dict[str, str | None] = {}
        for r in wanted:
            if r.kind is Kind.BRIDGE:
                host[r.attrs["name"]] = None
            elif r.kind is Kind.VETH:
                host[r.attrs["name"]] = r.attrs["peer_netns"]
        names = {c.netns for c in target.containers if c.netns}
        self.listener.watch(names & set(netns.list_names()), host)

    def _log(
        self, work: Work, outcome: Outcome, executed: list[Action], repaired: list[Action], seconds: float
    ) -> None:
        scope = "all" if outcome.namespaces is None or work.everything else len(outcome.namespaces)
        triggers = sorted({t for seen in self.triggers.values() for t in seen})
        if repaired:
            log.warning("drift repaired", drift=[describe(a) for a in repaired], trigger=triggers,
                        reasons=sorted(work.reasons))
        log.info("reconciled", reasons=sorted(work.reasons), scope=scope, actions=len(executed),
                 drift_repairs=len(repaired), seconds=round(seconds, 3), trigger=triggers[:5])

    def _log_files(self, selection: Selection) -> None:
        """Each rejection once (not at every resync), and when a file is accepted again."""
        for path, problems in selection.failed.items():
            if self.rejected.get(path) != problems:
                log.error("manifest rejected, last good state kept", file=path, problems=problems)
        for path in self.rejected.keys() - selection.failed.keys():
            log.info("manifest accepted again" if path in selection.chosen else "manifest gone", file=path)
        self.rejected = {p: list(v) for p, v in selection.failed.items()}

    def _metrics(
        self, outcome: Outcome, executed: list[Action], repaired: list[Action], seconds: float,
        selection: Selection,
    ) -> None:
        m = self.metrics
        m.inc("netctl_reconciles_total", result="ok")
        m.observe("netctl_reconcile_duration_seconds", seconds)
        m.inc("netctl_reconcile_actions_total", len(executed))
        for a in repaired:
            m.inc("netctl_drift_repairs_total", kind=a.resource.kind.value)
        m.set("netctl_managed_objects", len(outcome.target.networks), kind="network")
        m.set("netctl_managed_objects", len(outcome.target.containers), kind="container")
        m.set("netctl_invalid_manifests", len(selection.failed))
        m.set("netctl_last_reconcile_timestamp_seconds", time.time())


def _next_previous(
    previous: Mapping[str, Resource], wanted: Sequence[Resource], set_aside: set[str]
) -> dict[str, Resource]:
    """The new baseline: the target, except for containers set aside (they keep their old
    target, so that the next reconcile still sees them as changed)."""
    if not set_aside:
        return {r.key: r for r in wanted}
    peers = veth_peers([*wanted, *previous.values()])
    out = {r.key: r for r in wanted if owner_ns(r, peers) not in set_aside}
    out.update({k: r for k, r in previous.items() if owner_ns(r, peers) in set_aside})
    return out
