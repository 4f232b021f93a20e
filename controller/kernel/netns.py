"""Named network namespaces and one netlink socket per namespace, without helper processes.

A netlink socket stays in the namespace it was created in, so we create it after `setns()`
into the namespace and switch straight back: about 1 ms, where pyroute2's `IPRoute(netns=)`
forks a process per socket. Namespaces are created the way `ip netns add` does (unshare,
then bind-mount the namespace file onto /run/netns/NAME), also in-process.

Only the calling thread changes namespace, and only for the duration of one call.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from controller import failpoints

if TYPE_CHECKING:  # pyroute2 takes ~0.3 s to import: only commands that change the kernel pay it
    from pyroute2 import IPRoute

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

NETNS_RUN_DIR = os.environ.get("NETCTL_NETNS_DIR", "/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, target: str = "") -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", target)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode(), flags,
            data.encode() if data else None,
        ),
        "mount",
        target,
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(target.encode(), flags), "umount", target)


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def list_names() -> list[str]:
    """Namespaces that exist: a file in /run/netns with a namespace mounted on it. A process
    killed between creating the file and mounting leaves an empty file, which is none."""
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if _mounted(path(n)))
    except FileNotFoundError:
        return []


def exists(name: str) -> bool:
    return _mounted(path(name))


def _mounted(target: str) -> bool:
    # A namespace bind-mounted on the file lives on nsfs: another device than the folder's.
    try:
        return os.stat(target).st_dev != os.stat(os.path.dirname(target)).st_dev
    except FileNotFoundError:
        return False


# Overlay networks' own namespaces live apart from the containers' (/run/netns).
OVERLAY_NS_DIR = os.environ.get("NETCTL_OVERLAY_NS_DIR", "/run/netctl/overlay")


def ns_path(name: str) -> str:
    """An overlay namespace as Sockets takes it (an absolute path outside /run/netns)."""
    return os.path.join(OVERLAY_NS_DIR, name)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace `name`, then return to where it was."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(path(name), os.O_RDONLY)
        try:
            setns(fd)
        finally:
            os.close(fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


class Sockets:
    """One IPRoute per namespace, opened on first use and closed together."""

    def __init__(self) -> None:
        self._by_ns: dict[str | None, IPRoute] = {}

    def __enter__(self) -> Sockets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, netns: str | None) -> IPRoute:
        from pyroute2 import IPRoute

        ipr = self._by_ns.get(netns)
        if ipr is None:
            if netns is None:
                ipr = IPRoute()
            else:
                with entered(netns):
                    ipr = IPRoute()
            self._by_ns[netns] = ipr
        return ipr

    def create(self, name: str, ipv6: bool = True) -> IPRoute:
        """Create namespace `name` (with `lo` up) and return its socket."""
        from pyroute2 import IPRoute

        os.makedirs(NETNS_RUN_DIR, exist_ok=True)
        target = path(name)
        if _mounted(target):
            raise FileExistsError(errno.EEXIST, f"namespace {name} exists", target)
        fd = os.open(target, os.O_RDONLY | os.O_CREAT, 0o444)  # may be left by a killed run
        os.close(fd)
        failpoints.hit("netns-file-created")
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            unshare(CLONE_NEWNET)
            try:
                mount("/proc/thread-self/ns/net", target, "none", MS_BIND)
                if not ipv6:
                    _write_ipv6_default(False)
                ipr = IPRoute()
                ipr.link("set", index=1, state="up")
            finally:
                setns(home)
        except BaseException:
            _remove_mountpoint(target)
            raise
        finally:
            os.close(home)
        self._by_ns[name] = ipr
        return ipr

    def delete(self, name: str) -> None:
        ipr = self._by_ns.pop(name, None)
        if ipr is not None:
            ipr.close()
        _remove_mountpoint(path(name))

    def forget(self, name: str) -> None:
        ipr = self._by_ns.pop(name, None)
        if ipr is not None:
            ipr.close()

    def close(self) -> None:
        for ipr in self._by_ns.values():
            ipr.close()
        self._by_ns.clear()


def _remove_mountpoint(target: str) -> None:
    try:
        umount(target)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    with suppress(FileNotFoundError):
        os.unlink(target)


_IPV6_DEFAULT = "/proc/sys/net/ipv6/conf/default/disable_ipv6"


def _write_ipv6_default(enabled: bool) -> None:
    # /proc/sys/net is the namespace of the thread that opens it: call inside the namespace.
    with open(_IPV6_DEFAULT, "w", encoding="ascii") as f:
        f.write("0" if enabled else "1")


def ipv6_enabled(name: str) -> bool:
    """Whether new interfaces in namespace `name` get IPv6 (its `default` setting)."""
    with entered(name), open(_IPV6_DEFAULT, encoding="ascii") as f:
        return f.read().strip() == "0"


def set_ipv6(name: str, enabled: bool) -> None:
    with entered(name):
        _write_ipv6_default(enabled)
