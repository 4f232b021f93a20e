"""File descriptors of processes that hold one or two per container.

The controller keeps a netlink socket per namespace and the DNS server two sockets per
container, so both pass 1,024 descriptors soon after 500 containers. Two consequences:

- The soft limit (often 1,024) must be raised: to the hard limit, and as root past it.
- C libraries that wait with select() abort the process ("bit out of range 0 - FD_SETSIZE")
  when one of their own descriptors is 1,024 or more: libnftables does, and it opens a
  fresh netlink socket per call. Descriptors that live long are therefore moved to 1,024
  and up (`lift`), so that the low numbers stay free for such libraries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import socket

FD_SETSIZE = 1024
WANTED = 1 << 20  # the kernel's default fs.nr_open


def raise_limit() -> int:
    """Raise RLIMIT_NOFILE as far as we may; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            ceiling = int(f.read())
    except (OSError, ValueError):
        ceiling = WANTED
    for want in (min(WANTED, ceiling), hard):  # past the hard limit needs CAP_SYS_RESOURCE
        if want == resource.RLIM_INFINITY or want <= soft:
            continue
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            return want
    return soft


def lift(fd: int) -> int:
    """The same open file at a descriptor >= FD_SETSIZE (close-on-exec); `fd` is closed.
    Left where it is when the limit leaves no room up there."""
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FD_SETSIZE)
    except OSError:
        return fd
    os.close(fd)
    return high


def lift_socket(sock: socket.socket) -> socket.socket:
    """`sock` moved to a descriptor >= FD_SETSIZE (the old object is detached)."""
    if sock.fileno() >= FD_SETSIZE:
        return sock
    fd = lift(sock.detach())
    return socket.socket(fileno=fd)
