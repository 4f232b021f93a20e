"""`netctl dns serve`: one DNS server per state directory, restarted when it dies.

The process started by the pipeline is a small supervisor:

- It holds <state-dir>/dns/lock for its whole life: the lock says "a server runs here"
  (the pipeline starts one only when the lock is free, a second `serve` exits at once).
- It forks the worker (controller.dns.server), which serves. Forking from an interpreter that
  has already imported everything makes a restart take milliseconds.
- The worker sends it a copy of every socket it opens (SCM_RIGHTS over a socketpair) and
  says when it closes one. When the worker dies (a crash, SIGKILL, OOM) the supervisor forks
  a new one that inherits those same sockets: the namespaces' 127.0.0.11:53 never stop
  existing, queries that arrive meanwhile wait in the socket buffers and are answered by the
  successor. Restarts back off (50 ms doubling to 5 s) when the worker keeps dying at once.
- The worker dies with the supervisor (PR_SET_PDEATHSIG), so killing the supervisor stops
  everything and frees the lock; the next `netctl apply` then starts a new server.

A worker exit status of 0 means "stop" (SIGTERM, or nothing left to serve). After the
latter, with nothing published either (everything deleted), the supervisor removes the
server's files and dns/ itself: the state directory holds the store and nothing else.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import select
import signal
import socket
import sys
import time
import traceback

from controller.dns import records, server
from controller.dns.control import Paths, read_text
from controller.kernel import fds

PR_SET_PDEATHSIG = 1
MIN_BACKOFF = 0.05
MAX_BACKOFF = 5.0
STABLE = 30.0  # a worker that lived this long resets the backoff


def serve(state_dir: str) -> int:
    paths = Paths(state_dir)
    os.makedirs(paths.dir, exist_ok=True)
    lock = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"netctl dns: a server already runs for {state_dir}", file=sys.stderr)
        return 0
    with open(paths.pid, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    fds.raise_limit()
    return Supervisor(paths).run()


class Supervisor:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.worker = 0
        self.stopping = False
        self.kept: server.Inherited = {}

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        backoff = MIN_BACKOFF
        try:
            while True:
                started = time.monotonic()
                code = self._run_worker()
                if self.stopping:
                    return 0
                if code == 0:  # nothing left to serve
                    _tidy(self.paths)
                    return 0
                print(f"netctl dns: worker exited with {code}; restarting", file=sys.stderr, flush=True)
                quick = time.monotonic() - started < STABLE
                backoff = min(backoff * 2, MAX_BACKOFF) if quick else MIN_BACKOFF
                time.sleep(backoff)
        finally:
            for _, kept in self.kept.values():
                for fd in kept:
                    os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths.pid)

    def _on_signal(self, signum: int, _: object) -> None:
        """SIGTERM/SIGINT: stop (the worker first); SIGHUP: the worker reloads now."""
        if signum != signal.SIGHUP:
            self.stopping = True
        if self.worker:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker, signum)

    def _run_worker(self) -> int:
        """Fork a worker, keep what it sends until it exits: its exit status."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                ours.close()
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != parent:  # the supervisor died before prctl
                    os._exit(1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                code = server.run(self.paths, self.kept, theirs)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.worker = pid
        theirs.close()
        pidfd = os.pidfd_open(pid)
        try:
            poller = select.poll()
            poller.register(ours.fileno(), select.POLLIN)
            poller.register(pidfd, select.POLLIN)
            while True:
                for fd, _ in poller.poll():
                    if fd == ours.fileno():
                        if not _receive(ours, self.kept):
                            poller.unregister(ours.fileno())
                    elif fd == pidfd:
                        while _receive(ours, self.kept, block=False):  # sent before dying
                            pass
                        _, status = os.waitpid(pid, 0)
                        return os.waitstatus_to_exitcode(status)
        finally:
            self.worker = 0
            os.close(pidfd)
            ours.close()


def _tidy(paths: Paths) -> None:
    """No container left: remove the server's files, under the state lock, so that no apply
    publishes records or starts a server meanwhile (one that got the lock first has
    published something, and then everything stays)."""
    fd = os.open(os.path.join(paths.state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        text = read_text(paths.records)
        if text is not None:
            try:
                _, table = records.from_json(text)
            except (ValueError, KeyError, TypeError):
                return
            if table.all_containers:
                return  # names to keep for the next start
        for path in (paths.records, paths.hosts, paths.log, paths.log + ".1", paths.pid, paths.lock):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(OSError):  # `dns listen` settings stay, and with them dns/
            os.rmdir(paths.dir)
    finally:
        os.close(fd)


def _receive(sock: socket.socket, kept: server.Inherited, block: bool = True) -> bool:
    """One keep/drop message from the worker; False at end of stream (or nothing, non-blocking)."""
    try:
        msg, received, _, _ = socket.recv_fds(sock, 4096, 16, 0 if block else socket.MSG_DONTWAIT)
    except (BlockingIOError, ConnectionResetError):
        return False
    if not msg:
        for fd in received:
            os.close(fd)
        return False
    body = json.loads(msg)
    key = body["key"]
    old = kept.pop(key, None)
    if old is not None:
        for fd in old[1]:
            os.close(fd)
    if body["op"] == "keep":
        # The worker forked next inherits them at these numbers: above select()'s range.
        kept[key] = (int(body["ino"]), [fds.lift(fd) for fd in received])
    else:
        for fd in received:
            os.close(fd)
    return True

