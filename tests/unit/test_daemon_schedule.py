"""The controller's scheduler, driven by a fake clock: debounce, echo, resync, backoff."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from controller.daemon.schedule import EVERYTHING, HOST, Permanent, Scheduler, Temporary, Timing, Work

T = Timing(quiet=0.1, max_delay=0.5, write_timeout=2.0, drift_quiet=0.02, drift_max_delay=0.2,
           echo=0.1, resync=30.0, backoff_base=1.0, backoff_max=60.0)


def started() -> Scheduler:
    """A scheduler whose startup reconcile already ran at t=0."""
    s = Scheduler(T, started=0.0)
    work = s.take(0.0)
    assert work is not None and work.everything and work.read_folder and "startup" in work.reasons
    return s


def run_until(s: Scheduler, end: float, step: float = 0.01) -> list[tuple[float, Work]]:
    """Advance a fake clock in small steps, collecting the work due at each moment."""
    out = []
    t = 0.0
    while t <= end + 1e-9:
        work = s.take(round(t, 6))
        if work is not None:
            out.append((round(t, 6), work))
        t += step
    return out


def test_startup_is_one_full_reconcile_then_nothing_until_resync() -> None:
    s = started()
    assert s.take(0.0) is None
    assert s.next_deadline() == 30.0
    assert s.take(29.99) is None
    work = s.take(30.0)
    assert work is not None and work.everything and work.reasons == {"resync"}
    assert s.next_deadline() == 60.0


def test_a_burst_of_file_changes_is_one_reconcile() -> None:
    s = started()
    for i in range(50):  # a git checkout: fifty files within 50 ms
        s.files_changed(1.0 + i * 0.001)
    works = run_until(s, 3.0)
    assert len(works) == 1
    at, work = works[0]
    assert work.read_folder and not work.everything and work.reasons == {"files"}
    assert 1.149 <= at <= 1.16  # quiet period after the last change


def test_a_steady_stream_of_changes_is_reconciled_at_least_every_max_delay() -> None:
    s = started()
    t = 1.0
    while t < 3.0:  # one change every 50 ms: never quiet for 100 ms
        s.files_changed(t)
        t += 0.05
    works = run_until(s, 3.0)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(works)]
    assert works and works[0][0] <= 1.0 + T.max_delay + 0.011
    assert all(g <= T.max_delay + 0.06 for g in gaps)


def test_a_file_still_open_for_writing_is_waited_for_at_most_write_timeout() -> None:
    s = started()
    s.files_changed(1.0, complete=False)
    assert s.take(1.5) is None
    assert s.next_deadline() == 3.0
    work = s.take(3.0)
    assert work is not None and work.read_folder


def test_kernel_changes_during_our_execution_are_echo_planned_once_after_the_window() -> None:
    s = started()
    s.executed(1.0, 1.2)  # our plan ran from 1.0 to 1.2: the window lasts until 1.3
    s.kernel_changed(1.1, "web")
    s.kernel_changed(1.25, HOST)
    assert s.take(1.29) is None
    work = s.take(1.3)
    assert work is not None and work.reasons == {"echo"} and work.namespaces == {"web", HOST}
    assert s.take(1.5) is None


def test_kernel_changes_after_the_window_are_drift_debounced_briefly() -> None:
    s = started()
    s.executed(1.0, 1.2)
    s.kernel_changed(2.0, "web")
    s.kernel_changed(2.01, "db")
    assert s.take(2.02) is None
    work = s.take(2.03)
    assert work is not None and work.reasons == {"drift"} and work.namespaces == {"web", "db"}


def test_drift_before_our_execution_is_still_drift() -> None:
    s = started()
    s.executed(5.0, 5.5)
    s.kernel_changed(4.9, "web")  # queued while we executed: it happened before
    work = s.take(5.0)
    assert work is not None and work.reasons == {"drift"}


def test_temporary_failures_back_off_exponentially_per_key_and_do_not_block_others() -> None:
    s = started()
    dues = []
    now = 1.0
    for _ in range(8):
        due = s.failed(now, "web", Temporary("veth create failed"))
        assert due is not None
        dues.append(round(due - now, 6))
        work = s.take(due)
        assert work is not None and work.namespaces == {"web"} and "retry" in work.reasons
        now = due
    assert dues == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    # Meanwhile other containers' drift goes through, without web.
    s.failed(now, "web", Temporary("again"))
    s.kernel_changed(now + 0.5, "db")
    work = s.take(now + 0.6)
    assert work is not None and work.namespaces == {"db"} and work.skip == {"web"}
    s.succeeded(["web"])
    assert s.waiting() == {}


def test_a_temporary_failure_may_name_its_delay() -> None:
    s = started()
    assert s.failed(1.0, EVERYTHING, Temporary("lock busy", delay=0.5)) == 1.5


def test_everything_waiting_holds_drift_but_not_input_changes() -> None:
    s = started()
    s.failed(1.0, EVERYTHING, Temporary("bridge create failed"))  # retry at 2.0
    s.kernel_changed(1.1, "web")
    assert s.take(1.5) is None  # drift waits for the retry: no busy loop
    s.files_changed(1.5)
    work = s.take(1.6)
    assert work is not None and work.reasons == {"files"}  # new input goes through at once
    work = s.take(2.0)
    assert work is not None and work.everything and {"retry", "drift"} <= work.reasons


def test_permanent_failures_wait_for_an_input_change() -> None:
    s = started()
    assert s.failed(1.0, EVERYTHING, Permanent("pool exhausted")) is None
    s.kernel_changed(2.0, "web")
    assert s.take(100.0) is not None  # the resync still runs (it re-reads the folder)...
    s.failed(100.0, EVERYTHING, Permanent("pool exhausted"))
    s.kernel_changed(101.0, "web")
    assert s.take(110.0) is None  # ... but drift does not retry it
    s.input_changed()
    assert s.take(110.0) is not None


def test_sighup_asks_for_a_full_resync_now() -> None:
    s = started()
    s.full_resync("signal")
    assert s.next_deadline() == float("-inf")
    work = s.take(3.0)
    assert work is not None and work.everything and work.read_folder and work.reasons == {"signal"}


@given(st.lists(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), min_size=1, max_size=60))
def test_every_file_change_is_picked_up_soon_and_bursts_are_coalesced(times: list[float]) -> None:
    """Property, on a fake clock ticking every 10 ms with changes arriving in between: every
    change is followed by a reconcile within quiet (+ a tick), and reconciles are never
    closer than `quiet` unless max_delay forced them."""
    s = started()
    pending = sorted(1.0 + round(t, 3) for t in times)
    reconciles: list[float] = []
    last_change = -1.0
    tick = 1.0
    while tick < 8.0:
        while pending and pending[0] <= tick:
            last_change = pending.pop(0)
            s.files_changed(last_change)
        if s.take(tick) is not None:
            reconciles.append(tick)
        tick = round(tick + 0.01, 6)
    assert reconciles and reconciles[-1] >= last_change
    assert reconciles[-1] - last_change <= T.quiet + 0.011
    assert len(reconciles) <= len(times)
    span = max(times) - min(times)
    assert len(reconciles) <= 1 + span / T.quiet + 1
