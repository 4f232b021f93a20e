"""`netctl sandbox`: run a command as if on a fresh host, without touching the real one.

A sandbox host is a new network, mount, UTS and PID namespace. Its first process (PID 1
inside, `init` below) makes /run/netns, /etc/netns, the state directory and /run/netctl
private tmpfs mounts, mounts /proc and /sys for the new namespaces, runs the command as its
child and reaps whatever else ends up parented to it (the embedded DNS server daemonizes).
When the command ends, init ends, and the kernel kills every other process of the PID
namespace: nothing started in a sandbox can outlive it, and with the last process the
network namespace and everything netctl created in it disappear.

Other processes join a running sandbox host with `join_argv(pid)` (all four namespaces,
signals forwarded), never by entering only its network namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from controller.kernel.netns import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUTS,
    MS_PRIVATE,
    MS_REC,
    mount,
    setns,
    unshare,
)

CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
PRIVATE_DIRS = ("/run/netns", "/etc/netns", "/run/netctl")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
# setns order: the PID namespace applies to children only; the mount namespace last, since
# entering it changes what /proc/PID/ns/* of the others would resolve to.
JOIN_ORDER = (("net", CLONE_NEWNET), ("uts", CLONE_NEWUTS), ("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS))


def _setup(state_dir: str, hostname: str, own_pids: bool) -> None:
    """Inside the new namespaces, as PID 1: private folders, /proc, /sys, lo up."""
    mount("none", "/", "none", MS_REC | MS_PRIVATE)
    for folder in (*PRIVATE_DIRS, state_dir):
        os.makedirs(folder, exist_ok=True)
        mount("tmpfs", folder, "tmpfs", 0, "mode=0755")
    if own_pids:
        mount("proc", "/proc", "proc", 0)
    mount("sysfs", "/sys", "sysfs", 0)
    socket.sethostname(hostname)
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=1, state="up")


def _init(argv: Sequence[str], ready_fd: int | None) -> NoReturn:
    """PID 1: run `argv`, reap every child, exit with argv's status (which ends the rest)."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # a terminal's ^C goes to the command, not to init
    child = os.fork()
    if child == 0:
        try:
            for sig in (signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            os.execvp(argv[0], list(argv))
        finally:
            os._exit(127)
    signal.signal(signal.SIGTERM, lambda *_: _kill(child, signal.SIGTERM))
    signal.signal(signal.SIGHUP, lambda *_: _kill(child, signal.SIGHUP))
    if ready_fd is not None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            os._exit(exit_status(status))


def exit_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def start(
    state_dir: str, hostname: str, argv: Sequence[str], report_fd: int, wait: bool, own_pids: bool = True
) -> NoReturn:
    """In a freshly forked, single-threaded child: become a sandbox host running `argv`.

    Writes the init's pid (as seen from here) to `report_fd` once the host is set up (or
    nothing, if setting it up failed); then, with `wait`, waits for the init and exits with
    its status, else exits at once (the init lives on, reparented). Without `own_pids` the
    host shares this machine's PID namespace and /proc (a lab's console host only)."""
    unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | (CLONE_NEWPID if own_pids else 0))
    read_end, write_end = os.pipe()
    init = os.fork()
    if init == 0:
        try:
            os.close(read_end)
            os.close(report_fd)
            _setup(state_dir, hostname, own_pids)
            os.environ["NETCTL_SANDBOX"] = "1"
            os.environ["NETCTL_STATE_DIR"] = state_dir
            _init(argv, write_end)
        except BaseException as exc:  # report, never return into the caller's code
            print(f"netctl sandbox: {exc}", file=sys.stderr)
        os._exit(127)
    os.close(write_end)
    if os.read(read_end, 1) == b"1":
        os.write(report_fd, str(init).encode())
    os.close(read_end)
    os.close(report_fd)
    if not wait:
        os._exit(0)
    _, status = os.waitpid(init, 0)
    os._exit(exit_status(status))


def spawn(
    state_dir: str, hostname: str, argv: Sequence[str], *, detach: bool = False, own_pids: bool = True
) -> tuple[int, int]:
    """Fork a sandbox host running `argv`: (the forked child's pid, the host init's pid).
    The child exits with the command's status; `detach`: it exits (and is reaped) at once,
    and the host gets a session of its own and /dev/null for stdin, stdout and stderr."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if detach:
                os.setsid()
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
            start(state_dir, hostname, argv, write_end, wait=not detach, own_pids=own_pids)
        except BaseException as exc:
            print(f"netctl sandbox: {exc}", file=sys.stderr)
        os._exit(127)
    os.close(write_end)
    text = os.read(read_end, 32).decode()
    os.close(read_end)
    if not text or detach:
        os.waitpid(pid, 0)
    if not text:
        raise RuntimeError(f"sandbox {hostname} did not start (are you root?)")
    return pid, int(text)


def run(command: Sequence[str], state_dir: str, hostname: str = "sandbox") -> int:
    """Run `command` (default: a shell) on a new sandbox host, return its exit status."""
    argv = list(command) or [os.environ.get("SHELL", "/bin/sh")]
    # The command owns the terminal: netctl itself only waits.
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    pid, init = spawn(state_dir, hostname, argv)
    net_inode = _ns_inode(str(init), "net")
    _, status = os.waitpid(pid, 0)
    end_leftovers(net_inode)
    return os.waitstatus_to_exitcode(status)


def _ns_inode(pid: str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def end_leftovers(net_inode: int) -> None:
    """Processes that entered the sandbox's network namespace from outside its PID namespace
    (`ip netns exec`, nsenter -n) would keep it alive: end them too."""
    for _ in range(50):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if _ns_inode(entry, "net") == net_inode:
                    found.append(int(entry))
            except OSError:
                continue
        if not found:
            return
        for pid in found:
            _kill(pid, signal.SIGKILL)
        time.sleep(0.02)


# ---------------------------------------------------------------------------- joining a host


def join_argv(pid: int, wd: str | None = None) -> list[str]:
    """The argv prefix that runs a command inside the sandbox host whose init is `pid`."""
    return [sys.executable, "-m", "controller.kernel.sandbox", str(pid), wd or os.getcwd(), "--"]


def cable(a_pid: int, a_name: str, b_pid: int, b_name: str, mtu: int | None = None) -> None:
    """A veth between two sandbox hosts (given by a process of each): `a_name` in the first,
    `b_name` in the second, both down and unaddressed. Made from here, since neither host can
    name the other's namespace from inside its own PID and mount namespaces."""
    from pyroute2 import IPRoute

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    a_fd = os.open(f"/proc/{a_pid}/ns/net", os.O_RDONLY)
    b_fd = os.open(f"/proc/{b_pid}/ns/net", os.O_RDONLY)
    try:
        setns(a_fd, CLONE_NEWNET)
        try:
            with IPRoute() as ipr:
                extra = {"mtu": mtu} if mtu else {}
                peer = {"ifname": b_name, "net_ns_fd": b_fd, **extra}
                ipr.link("add", ifname=a_name, kind="veth", peer=peer, **extra)
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        for fd in (home, a_fd, b_fd):
            os.close(fd)


def join(pid: int, wd: str, argv: Sequence[str]) -> int:
    """Enter the namespaces of process `pid`, run `argv` as a child (it must be a child to
    be in the PID namespace), forward signals to it, return its exit status. The child is
    killed if this process dies, so a SIGKILL to the process a caller started reaches it."""
    fds = [(os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY), flag) for kind, flag in JOIN_ORDER]
    for fd, flag in fds:
        setns(fd, flag)
        os.close(fd)
    os.chdir(wd)
    child = os.fork()
    if child == 0:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.execvp(argv[0], list(argv))
        finally:
            os._exit(127)
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _kill(child, signum))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):  # die the same way, so that the caller sees the signal
        dead_by = os.WTERMSIG(status)
        if dead_by in FORWARDED:
            signal.signal(dead_by, signal.SIG_DFL)
        os.kill(os.getpid(), dead_by)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":  # python -m controller.kernel.sandbox PID WD -- CMD...
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit("usage: python -m controller.kernel.sandbox PID WD -- CMD...")
    sys.exit(join(int(sys.argv[1]), sys.argv[2], sys.argv[4:]))
