"""The controller's decisions on a fake clock and a fake session (no kernel): what it applies
from the folder, what it keeps when files are bad, how it retries, what status says."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from controller.daemon.controller import Controller, Options
from controller.daemon.events import FolderChanged, KernelChanged
from controller.daemon.schedule import Timing
from controller.desired import desired_resources
from controller.errors import ApplyError, LockError
from controller.kernel.netns import Sockets
from controller.model import Action, Document, Observed, Op, Plan, Source
from controller.pipeline import Outcome, Scope, build, merge, now
from controller.resolve import HostFacts, resolve
from controller.store import Store

NET = ("apiVersion: netctl/v1\nkind: Network\nmetadata: {{name: {name}}}\n"
       "spec: {{ipam: {{config: [{{subnet: {subnet}}}]}}}}\n")
CTR = "apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec: {{networks: [{net}]}}\n"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeSockets(Sockets):
    def close(self) -> None:
        return None


class FakeSession:
    """Session.replace_origin with the real pure layers and a kernel that always converges,
    except for namespaces in `broken` (their first action fails) or while `busy` (lock)."""

    def __init__(self, state_dir: str) -> None:
        self.store = Store(state_dir)
        self.sockets = FakeSockets()
        self.progress: Callable[[Plan], Callable[[Action], None] | None] | None = None
        self.calls: list[tuple[list[str], frozenset[str]]] = []
        self.broken: set[str] = set()
        self.broken_bridges: set[str] = set()  # networks whose bridge the kernel refuses
        self.busy = False

    def replace_origin(self, origin: str, documents: Sequence[Document], scope: Scope) -> Outcome:
        if self.busy:
            raise LockError("another netctl (pid 42) holds the lock")
        origins = self.store.origins()
        docs = merge([d for d in self.store.documents() if origins.get((d.kind, d.name)) != origin],
                     documents)
        for doc in docs:  # as Session does: the change is rolled back, its document named
            if doc.kind == "Network" and doc.name in self.broken_bridges:
                error = ApplyError(f"{doc.source}: create link:/br-x failed: Invalid argument",
                                   key="link:/br-x")
                error.files = ((doc.source.file, doc.source.line),)
                error.detail = "create link:/br-x failed: Invalid argument; rolled back"
                raise error
        spec = build(docs)
        target, allocations = resolve(spec, self.store.allocations(), HostFacts(), now())
        wanted = desired_resources(target)
        target_ns = {c.netns for c in target.containers if c.netns}
        owned = self.store.owned_netns()
        names = scope.namespaces(wanted, owned | target_ns)
        self.calls.append((sorted(d.name for d in docs), names))
        origins.update({(d.kind, d.name): origin for d in documents})
        self.store.save(docs, origins, allocations, target_ns, now())
        self.store.forget_netns((owned - target_ns) & names)
        for ns in sorted(names & self.broken):
            plan = Plan((Action(Op.CREATE, next(r for r in wanted if r.key == f"netns:{ns}")),))
            assert self.progress is not None
            self.progress(plan)
            raise ApplyError(f"create netns:{ns} failed: [Errno 17] File exists")
        return Outcome(Plan(), target, Observed(), wanted=wanted,
                       namespaces=None if scope.everything else names)


World = tuple[Controller, FakeSession, FakeClock, Path]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Controller, FakeSession, FakeClock, Path]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "net.yaml").write_text(NET.format(name="front", subnet="10.1.0.0/16"))
    (folder / "web.yaml").write_text(CTR.format(name="web", net="front"))
    session = FakeSession(str(tmp_path / "state"))
    clock = FakeClock()
    options = Options(str(folder), str(tmp_path / "state"), timing=Timing())
    ctl = Controller(options, session, clock=clock)  # type: ignore[arg-type]
    ctl.step(max_wait=0)  # the startup reconcile
    return ctl, session, clock, folder


def changed(ctl: Controller, clock: FakeClock, path: Path) -> None:
    """A file was written and closed: the event, then time passes until it is reconciled."""
    ctl.handle(FolderChanged(str(path), "closed", clock()))
    settle(ctl, clock, 1.0)


def settle(ctl: Controller, clock: FakeClock, seconds: float) -> None:
    end = clock.t + seconds
    while clock.t < end:
        ctl.step(max_wait=0)
        clock.t = round(clock.t + 0.05, 6)


def status(session: FakeSession) -> dict[tuple[str, str], tuple[str, str]]:
    return {(r.kind, r.name): (r.state, r.reason) for r in session.store.status_rows()}


def test_startup_applies_the_folder_and_reports_converged(world: World) -> None:
    _, session, _, folder = world
    assert session.calls[0][0] == ["front", "web"]
    rows = {(r.kind, r.name): r for r in session.store.status_rows()}
    assert rows[("Container", "web")].state == "converged"
    assert rows[("Container", "web")].source == f"controller:{folder}/web.yaml:1"


def test_one_changed_container_is_the_only_namespace_read(world: World) -> None:
    ctl, session, clock, folder = world
    (folder / "db.yaml").write_text(CTR.format(name="db", net="front"))
    changed(ctl, clock, folder / "db.yaml")
    assert session.calls[-1] == (["db", "front", "web"], frozenset({"db"}))
    # Drift seen in web's namespace: only web is read.
    ctl.handle(KernelChanged("web", "link eth0 down", clock()))
    settle(ctl, clock, 0.5)
    assert session.calls[-1][1] == {"web"}


def test_unchanged_folder_events_do_not_reconcile(world: World) -> None:
    ctl, session, clock, folder = world
    calls = len(session.calls)
    (folder / ".web.yaml.swp").write_text("editor noise")
    changed(ctl, clock, folder / ".web.yaml.swp")
    assert len(session.calls) == calls


def test_a_deleted_file_is_pruned_and_a_moved_object_kept(world: World) -> None:
    ctl, session, clock, folder = world
    (folder / "web.yaml").rename(folder / "moved.yaml")
    ctl.handle(FolderChanged(str(folder / "web.yaml"), "moved", clock(), str(folder / "moved.yaml")))
    settle(ctl, clock, 1.0)
    assert session.calls[-1] == (["front", "web"], frozenset())  # nothing to re-read: same target
    (folder / "moved.yaml").unlink()
    changed(ctl, clock, folder / "moved.yaml")
    assert session.calls[-1] == (["front"], frozenset({"web"}))
    assert ("Container", "web") not in status(session)


def test_invalid_file_keeps_last_good_state_and_is_not_retried(world: World) -> None:
    ctl, session, clock, folder = world
    (folder / "web.yaml").write_text("apiVersion: netctl/v1\nkind: Container\nmetadata: {name: web}\n"
                                     "spec:\n  networks: [front]\n  ports: [\"70000:80\"]\n")
    changed(ctl, clock, folder / "web.yaml")
    assert session.calls[-1][0] == ["front", "web"]  # the old web
    rows = status(session)
    assert rows[("File", str(folder / "web.yaml"))][0] == "failed"
    assert f"{folder}/web.yaml:6 spec.ports[0]" in rows[("File", str(folder / "web.yaml"))][1]
    assert rows[("Container", "web")][0] == "failed"
    assert "last good state kept" in rows[("Container", "web")][1]
    reads = ctl.folder.reads
    ctl.handle(KernelChanged(None, "link netctl0 down", clock()))
    settle(ctl, clock, 1.0)
    ctl.scheduler.full_resync()
    settle(ctl, clock, 1.0)
    assert ctl.folder.reads == reads  # the bad file was not parsed again
    (folder / "web.yaml").write_text(CTR.format(name="web", net="front"))
    changed(ctl, clock, folder / "web.yaml")
    rows = status(session)
    assert rows[("Container", "web")] == ("converged", "")
    assert ("File", str(folder / "web.yaml")) not in rows


def test_a_conflict_is_reported_against_both_files_and_changes_neither(world: World) -> None:
    ctl, session, clock, folder = world
    (folder / "other.yaml").write_text(NET.format(name="back", subnet="10.1.5.0/24")
                                       + "---\n" + CTR.format(name="api", net="back"))
    changed(ctl, clock, folder / "other.yaml")
    assert session.calls[-1][0] == ["front", "web"]  # back and api were not applied
    rows = status(session)
    for file in ("net.yaml", "other.yaml"):
        state, reason = rows[("File", str(folder / file))]
        assert state == "failed" and "overlaps" in reason
    assert rows[("Network", "front")][0] == "converged"
    # Fixing the subnet applies the new file.
    (folder / "other.yaml").write_text(NET.format(name="back", subnet="10.2.0.0/16")
                                       + "---\n" + CTR.format(name="api", net="back"))
    changed(ctl, clock, folder / "other.yaml")
    assert session.calls[-1][0] == ["api", "back", "front", "web"]
    assert not [k for k in status(session) if k[0] == "File"]


def test_a_failing_container_is_set_aside_and_retried_with_backoff(world: World) -> None:
    ctl, session, clock, folder = world
    session.broken = {"bad"}
    (folder / "more.yaml").write_text(CTR.format(name="bad", net="front") + "---\n"
                                      + CTR.format(name="good", net="front"))
    ctl.handle(FolderChanged(str(folder / "more.yaml"), "closed", clock()))
    settle(ctl, clock, 0.5)
    names = [scope for _, scope in session.calls[-2:]]
    assert names == [{"bad", "good"}, {"good"}]  # tried, then again without `bad`
    rows = status(session)
    assert rows[("Container", "good")][0] == "converged"
    assert rows[("Container", "bad")][0] == "failed" and "File exists" in rows[("Container", "bad")][1]
    retries = []
    start = len(session.calls)
    for _ in range(4):
        due, _reason = ctl.scheduler.waiting()["bad"]
        assert due is not None
        retries.append(round(due - clock.t, 1))
        clock.t = due
        ctl.step(max_wait=0)
    assert retries[1:] == [2.0, 4.0, 8.0] and retries[0] <= 1.0
    # Each retry tries `bad` alone (then the rest without it: the host's resources).
    assert [scope for _, scope in session.calls[start:] if scope] == [{"bad"}] * 4
    session.broken = set()
    clock.t = ctl.scheduler.waiting()["bad"][0] or clock.t
    ctl.step(max_wait=0)
    assert ctl.scheduler.waiting() == {}
    assert status(session)[("Container", "bad")] == ("converged", "")


def test_a_busy_lock_is_retried_soon_without_touching_status(world: World) -> None:
    ctl, session, clock, folder = world
    before = status(session)
    session.busy = True
    (folder / "db.yaml").write_text(CTR.format(name="db", net="front"))
    ctl.handle(FolderChanged(str(folder / "db.yaml"), "closed", clock()))
    settle(ctl, clock, 0.3)
    assert status(session) == before
    due, reason = ctl.scheduler.waiting()["*"]
    assert due is not None and due - clock.t <= 0.5 and "holds the lock" in reason
    session.busy = False
    settle(ctl, clock, 1.0)
    assert status(session)[("Container", "db")][0] == "converged"


def test_objects_applied_from_a_shell_are_kept(world: World) -> None:
    ctl, session, clock, folder = world
    body = {"apiVersion": "netctl/v1", "kind": "Container", "metadata": {"name": "adhoc"},
            "spec": {"networks": ["front"]}}
    shell = Document("Container", "adhoc", body, Source("/tmp/adhoc.yaml", 1))
    origins = session.store.origins()
    origins[("Container", "adhoc")] = "apply"
    docs = [*session.store.documents(), shell]
    session.store.save(docs, origins, session.store.allocations(), set(), now())
    (folder / "web.yaml").unlink()
    changed(ctl, clock, folder / "web.yaml")
    assert session.calls[-1][0] == ["adhoc", "front"]  # web pruned, adhoc kept
    rows = {(r.kind, r.name): r for r in session.store.status_rows()}
    assert rows[("Container", "adhoc")].source == "apply:/tmp/adhoc.yaml:1"


def test_a_missing_folder_prunes_nothing_and_is_looked_for_again(world: World) -> None:
    ctl, session, clock, folder = world
    calls = len(session.calls)
    moved = folder.with_name("elsewhere")
    folder.rename(moved)
    ctl.handle(FolderChanged(str(folder), "deleted", clock()))
    settle(ctl, clock, 0.5)
    assert len(session.calls) == calls  # nothing pruned, nothing reconciled
    assert ctl.scheduler.next_deadline() is not None  # it looks again within a second
    moved.rename(folder)
    (folder / "db.yaml").write_text(CTR.format(name="db", net="front"))
    settle(ctl, clock, 1.5)  # no event for the new folder: found by looking again
    assert session.calls[-1][0] == ["db", "front", "web"]


def test_a_file_the_kernel_refuses_is_held_and_the_rest_converges(world: World) -> None:
    ctl, session, clock, folder = world
    session.broken_bridges = {"bad"}
    (folder / "bad.yaml").write_text(NET.format(name="bad", subnet="10.9.0.0/16"))
    (folder / "more.yaml").write_text(CTR.format(name="other", net="front"))
    ctl.handle(FolderChanged(str(folder / "bad.yaml"), "closed", clock()))
    ctl.handle(FolderChanged(str(folder / "more.yaml"), "closed", clock()))
    settle(ctl, clock, 1.0)
    rows = status(session)
    assert rows[("Container", "other")][0] == "converged"
    assert rows[("Container", "web")][0] == "converged"
    assert ("Network", "bad") not in {(d.kind, d.name) for d in session.store.documents()}
    assert ctl.scheduler.waiting() == {}  # nothing to retry: the file waits for a change


def test_a_failure_nobody_explains_backs_off_1_2_4_8(world: World) -> None:
    ctl, session, clock, folder = world
    session.busy = False
    session.broken_bridges = {"front"}  # blamed on net.yaml, which did not change: not held
    (folder / "more.yaml").write_text(CTR.format(name="other", net="front"))
    ctl.handle(FolderChanged(str(folder / "more.yaml"), "closed", clock()))
    settle(ctl, clock, 0.5)
    delays = []
    for _ in range(4):
        due, _reason = ctl.scheduler.waiting()["*"]
        assert due is not None
        delays.append(round(due - clock.t, 1))
        clock.t = due
        # the kernel's own echo of every attempt, and the folder's events, change nothing
        ctl.handle(KernelChanged(None, "link br0 added", clock.t))
        ctl.step(max_wait=0)
    assert delays[1:] == [2.0, 4.0, 8.0] and delays[0] <= 1.0
