"""`netctl sandbox`: run a command as if on a fresh host, without touching the real one.

The child gets a new network namespace (only `lo`) and a new mount namespace in which
/run/netns, /etc/netns, the state directory and /run/netctl are private tmpfs mounts and
/sys shows the new namespace. Everything netctl creates in there disappears with the last
process of the sandbox: nothing to clean up, nothing leaks into the machine's network.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence

from controller.kernel.netns import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUTS,
    MS_PRIVATE,
    MS_REC,
    mount,
    unshare,
)

PRIVATE_DIRS = ("/run/netns", "/etc/netns", "/run/netctl")


def enter(state_dir: str, hostname: str = "sandbox") -> None:
    """Turn the calling (single-threaded) process into a sandbox host."""
    unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS)
    mount("none", "/", "none", MS_REC | MS_PRIVATE)
    for folder in (*PRIVATE_DIRS, state_dir):
        os.makedirs(folder, exist_ok=True)
        mount("tmpfs", folder, "tmpfs", 0, "mode=0755")
    mount("sysfs", "/sys", "sysfs", 0)
    socket.sethostname(hostname)
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=1, state="up")


def run(command: Sequence[str], state_dir: str) -> int:
    """Fork a sandbox host, run `command` (default: a shell) in it, return its exit status."""
    argv = list(command) or [os.environ.get("SHELL", "/bin/sh")]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            enter(state_dir)
            # Tell the parent which namespaces are the sandbox's, to clean up after us.
            os.write(write_end, f"{_ns_inode('self', 'net')} {_ns_inode('self', 'mnt')}".encode())
            os.close(write_end)
            os.environ["NETCTL_SANDBOX"] = "1"
            os.environ["NETCTL_STATE_DIR"] = state_dir
            os.execvp(argv[0], argv)
        except BaseException as exc:  # report, never return into the parent's code
            print(f"netctl sandbox: {exc}", file=sys.stderr)
            os._exit(127)
    os.close(write_end)
    inodes = os.read(read_end, 64).decode().split()
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if len(inodes) == 2:
        end_leftovers(int(inodes[0]), int(inodes[1]))
    return os.waitstatus_to_exitcode(status)


def _ns_inode(pid: str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def end_leftovers(net_inode: int, mnt_inode: int) -> None:
    """Kill what the command left running in the sandbox (the embedded DNS server, a
    controller, servers started by hand): their namespaces, and so the sandbox, end with them."""
    for _ in range(50):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if _ns_inode(entry, "net") == net_inode or _ns_inode(entry, "mnt") == mnt_inode:
                    found.append(int(entry))
            except OSError:
                continue
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
