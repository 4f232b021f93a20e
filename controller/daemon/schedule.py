"""When the controller reconciles, and what (pure: every method takes the time as an argument).

Inputs are events with their time: a manifest changed, the kernel changed (in the host or in
one container's namespace), a full resync was asked for (SIGHUP), a reconcile failed. The
output is `Work`: one reconcile covering everything due, or nothing yet.

- Manifest changes are debounced: a reconcile runs once no change came for `quiet` seconds,
  and never later than `max_delay` after the first one, so `git checkout` of fifty files is
  one reconcile. A file modified but not closed yet is waited for (`write_timeout` at most).
- Kernel changes are debounced much more briefly (`drift_quiet`). Changes seen while our own
  plan executed, or up to `echo` seconds after it, are our own echo: they do not count as
  drift, but the namespaces they came from are planned once more when the window closes, in
  case real drift hid among them.
- A full resync is due every `resync` seconds after the last one (startup counts).
- Failures are typed (kopf's habit): `Temporary` is retried with exponential backoff per key
  (a container's namespace, or `EVERYTHING` when no single container can be blamed);
  `Permanent` is not retried until the input changes (`input_changed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Clock = Callable[[], float]

HOST = ""  # the host's namespace, in the sets of namespaces that drifted
EVERYTHING = "*"  # the retry key of a failure that no single container explains


@dataclass(frozen=True)
class Timing:
    quiet: float = 0.1
    max_delay: float = 0.5
    write_timeout: float = 2.0
    drift_quiet: float = 0.02
    drift_max_delay: float = 0.2
    echo: float = 0.1
    resync: float = 30.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0


@dataclass(frozen=True)
class Temporary:
    """Worth retrying (a kernel call failed, the state lock was busy): after `delay` seconds,
    or with exponential backoff when None."""

    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Permanent:
    """Retrying cannot help until the input changes (invalid or unresolvable manifests)."""

    reason: str


Failure = Temporary | Permanent


@dataclass(frozen=True)
class Work:
    """One reconcile: read the folder?, which namespaces to (re-)read, which to leave alone."""

    read_folder: bool = False
    everything: bool = False
    namespaces: frozenset[str] = frozenset()  # may contain HOST
    skip: frozenset[str] = frozenset()  # failed and waiting for their retry
    reasons: frozenset[str] = frozenset()  # files, drift, echo, resync, signal, retry, startup


@dataclass
class _Retry:
    attempts: int = 0
    due: float | None = None  # None: permanent, waits for an input change
    reason: str = ""


@dataclass
class Scheduler:
    timing: Timing = field(default_factory=Timing)
    started: float = 0.0

    def __post_init__(self) -> None:
        self._files_first: float | None = None
        self._files_last = 0.0
        self._write_wait: float | None = None
        self._drift: set[str] = set()
        self._drift_first: float | None = None
        self._drift_last = 0.0
        self._echo: set[str] = set()
        self._window = (0.0, -1.0)  # [start, end] of our own last execution, echo included
        self._full: set[str] = {"startup"}
        self._resync_due = self.started + self.timing.resync
        self._retries: dict[str, _Retry] = {}

    # ------------------------------------------------------------------ inputs

    def files_changed(self, now: float, complete: bool = True) -> None:
        """A manifest changed. `complete=False`: modified but still open for writing; read it
        when it is closed (another call), or after write_timeout at the latest."""
        if not complete:
            due = now + self.timing.write_timeout
            self._write_wait = due if self._write_wait is None else min(self._write_wait, due)
            return
        if self._files_first is None:
            self._files_first = now
        self._files_last = now

    def kernel_changed(self, at: float, netns: str = HOST) -> None:
        """The kernel changed at `at` in `netns` (HOST: the host's namespace)."""
        start, end = self._window
        if start <= at <= end:
            self._echo.add(netns)
            return
        self._drift.add(netns)
        if self._drift_first is None:
            self._drift_first = at
        self._drift_last = max(self._drift_last, at)

    def full_resync(self, reason: str = "signal") -> None:
        self._full.add(reason)

    def executed(self, start: float, end: float) -> None:
        """Our own plan ran from start to end: kernel changes seen until end + echo are ours."""
        self._window = (start, end + self.timing.echo)

    def input_changed(self) -> None:
        """New desired state: whatever failed is worth trying again now."""
        self._retries.clear()

    def failed(self, now: float, key: str, failure: Failure) -> float | None:
        """Record a failure of `key`; return when it will be retried (None: not until the
        input changes)."""
        retry = self._retries.setdefault(key, _Retry())
        retry.attempts += 1
        retry.reason = failure.reason
        if isinstance(failure, Permanent):
            retry.due = None
            return None
        delay = failure.delay
        if delay is None:
            delay = min(self.timing.backoff_base * 2 ** (retry.attempts - 1), self.timing.backoff_max)
        retry.due = now + delay
        return retry.due

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._retries.pop(key, None)

    def waiting(self) -> dict[str, tuple[float | None, str]]:
        """Failed keys: when they will be retried (None: on input change) and why."""
        return {key: (r.due, r.reason) for key, r in self._retries.items()}

    # ------------------------------------------------------------------ outputs

    def _files_due(self) -> float | None:
        dues = []
        if self._files_first is not None:
            dues.append(min(self._files_last + self.timing.quiet, self._files_first + self.timing.max_delay))
        if self._write_wait is not None:
            dues.append(self._write_wait)
        return min(dues) if dues else None

    def _drift_due(self) -> float | None:
        if self._drift_first is None:
            return None
        t = self.timing
        return min(self._drift_last + t.drift_quiet, self._drift_first + t.drift_max_delay)

    def _echo_due(self) -> float | None:
        return self._window[1] if self._echo else None

    def _global_wait(self) -> float | None:
        """While everything waits for a retry, kernel changes wait too (input changes do not):
        otherwise drift would turn a backoff into a busy loop."""
        retry = self._retries.get(EVERYTHING)
        return None if retry is None else (retry.due if retry.due is not None else float("inf"))

    def next_deadline(self) -> float | None:
        """The earliest time at which `take` may return work (None: only after an input)."""
        if self._full:
            return float("-inf")
        blocked = self._global_wait()
        dues = [self._files_due(), self._resync_due]
        kernel = [self._drift_due(), self._echo_due()]
        dues += [max(d, blocked) if blocked is not None and d is not None else d for d in kernel]
        dues += [r.due for r in self._retries.values() if r.due is not None]
        return min((d for d in dues if d is not None), default=None)

    def take(self, now: float) -> Work | None:
        """The work due at `now` (and clear it), or None."""
        reasons: set[str] = set(self._full)
        everything = bool(self._full)
        read_folder = everything
        namespaces: set[str] = set()
        files_due = self._files_due()
        if files_due is not None and files_due <= now:
            read_folder = True
            reasons.add("files")
        if self._resync_due <= now:
            everything = read_folder = True
            reasons.add("resync")
        blocked = self._global_wait()
        held = blocked is not None and blocked > now
        drift_due = self._drift_due()
        if drift_due is not None and drift_due <= now and not held:
            namespaces |= self._drift
            reasons.add("drift")
        echo_due = self._echo_due()
        if echo_due is not None and echo_due <= now and not held:
            namespaces |= self._echo
            reasons.add("echo")
        due_retries = {k for k, r in self._retries.items() if r.due is not None and r.due <= now}
        if EVERYTHING in due_retries:
            everything = read_folder = True
        namespaces |= due_retries - {EVERYTHING}
        if due_retries:
            reasons.add("retry")
        if not reasons:
            return None
        # Clear what is taken.
        self._full.clear()
        if "files" in reasons or everything:
            self._files_first, self._write_wait = None, None
        if "drift" in reasons or everything:
            self._drift.clear()
            self._drift_first, self._drift_last = None, 0.0
        if "echo" in reasons or everything:
            self._echo.clear()
        if everything:
            self._resync_due = now + self.timing.resync
        for key in due_retries:
            self._retries[key].due = float("inf")  # running now; failed() or succeeded() next
        skip = frozenset(
            k for k, r in self._retries.items() if k != EVERYTHING and k not in due_retries
        )
        return Work(read_folder, everything, frozenset(namespaces - skip), skip, frozenset(reasons))
