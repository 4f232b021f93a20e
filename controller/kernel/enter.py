"""`netctl exec`: run a command inside a container's namespace, as `ip netns exec` does.

The process joins the container's network namespace, gets a private mount namespace in which
the files of /etc/netns/<name>/ are bind-mounted over /etc and /sys shows the container's
interfaces, and a UTS namespace carrying the container's hostname.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from controller.kernel import netns
from controller.kernel.netns import CLONE_NEWNS, CLONE_NEWUTS, MS_BIND, MS_PRIVATE, MS_REC, mount, unshare

ETC_NETNS = "/etc/netns"


def exec_in(name: str | None, hostname: str | None, command: Sequence[str]) -> None:
    """Replace this process with `command` inside container `name` (None: the host's)."""
    if name is not None:
        fd = os.open(netns.path(name), os.O_RDONLY)
        try:
            netns.setns(fd)
        finally:
            os.close(fd)
        unshare(CLONE_NEWNS | CLONE_NEWUTS)
        mount("none", "/", "none", MS_REC | MS_PRIVATE)
        mount("sysfs", "/sys", "sysfs", 0)
        folder = os.path.join(ETC_NETNS, name)
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if entry.startswith("."):
                continue
            target = os.path.join("/etc", entry)
            if os.path.exists(target):
                mount(os.path.join(folder, entry), target, "none", MS_BIND)
        if hostname:
            socket.sethostname(hostname)
    os.execvp(command[0], list(command))
