"""What wakes the controller: manifest changes, kernel changes, signals.

Kernel changes come from netlink notifications (links, addresses, routes) on one socket in
the host's namespace and one in each owned container namespace, all read by one thread
with epoll; a socket is created inside its namespace with `netns.entered`, no process per
namespace. File changes (the watched folder, /etc/netns/<name>/..., /run/netns) come from
watchdog (inotify). Everything becomes an `Event` on one queue that the controller's main
thread reads.

Notifications are filtered to what netctl owns, so that foreign interfaces flapping do not
cause reconciles: in the host's namespace only our bridges and veths (by name, or by index
for addresses), inside a container every link and global address and the default routes.
Link-local IPv6 addresses come and go by themselves (and are not ours): ignored.

Firewall changes come from nfnetlink's nftables group (one more socket in the host's
namespace): a change to netctl's table, or to the iptables-nft tables its iptables chains
live in (`nft flush ruleset`, a firewall reload), wakes a host reconcile at once instead of
at the next resync.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from controller.dns import control as embedded_dns
from controller.kernel import netns

log = structlog.get_logger("netctl.controller")

# ------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class FolderChanged:
    path: str
    change: str  # created | modified | closed | deleted | moved | attrib
    at: float
    dest: str = ""


@dataclass(frozen=True)
class KernelChanged:
    netns: str | None  # the container it concerns (its namespace or its host veth); None: the host's
    what: str  # for the log: "link vethab12 deleted", "file /etc/netns/web/hosts modified"
    at: float


@dataclass(frozen=True)
class Stop:
    signum: int


@dataclass(frozen=True)
class Resync:
    signum: int


Event = FolderChanged | KernelChanged | Stop | Resync
Post = Callable[[Event], None]

# ------------------------------------------------------------------------------- netlink

NLMSG_HDR = struct.Struct("=LHHLL")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")

NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 2, 3, 4
AF_BRIDGE = 7
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_IFALIAS = 1, 3, 4, 10, 20
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL = 1, 2, 3
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE


@dataclass(frozen=True)
class Notification:
    """One rtnetlink message, reduced to what filtering and logging need."""

    type: int
    index: int = 0
    ifname: str = ""
    address: str = ""
    prefixlen: int = 0
    scope: int = 0
    dst_len: int = 0
    table: int = 0
    up: bool = False
    pid: int = 0  # the port the message was sent to: ours for dump replies
    owned: tuple[object, ...] = ()  # a link's attributes netctl sets: up, mtu, master, mac, alias
    family: int = 0

    def describe(self, ifname: str = "") -> str:
        dev = self.ifname or ifname or f"index {self.index}"
        if self.type in (RTM_NEWLINK, RTM_DELLINK):
            state = "deleted" if self.type == RTM_DELLINK else ("up" if self.up else "down")
            return f"link {dev} {state}"
        if self.type in (RTM_NEWADDR, RTM_DELADDR):
            verb = "removed from" if self.type == RTM_DELADDR else "added to"
            return f"address {self.address}/{self.prefixlen} {verb} {dev}"
        verb = "removed" if self.type == RTM_DELROUTE else "changed"
        return f"route {'default' if self.dst_len == 0 else 'prefix'} {verb} ({dev})"


def parse(data: bytes) -> Iterator[Notification]:
    """rtnetlink messages in one datagram (pure; unknown types are skipped)."""
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size:
            return
        body = data[offset + NLMSG_HDR.size : offset + length]
        offset += (length + 3) & ~3
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and len(body) >= IFINFOMSG.size:
            family, _type, index, flags, _change = IFINFOMSG.unpack_from(body)
            attrs = _attrs(body[IFINFOMSG.size :])
            owned = (bool(flags & 1), attrs.get(IFLA_MTU), attrs.get(IFLA_MASTER), attrs.get(IFLA_ADDRESS),
                     attrs.get(IFLA_IFALIAS))
            yield Notification(mtype, index, _text(attrs.get(IFLA_IFNAME)), up=bool(flags & 1), pid=pid,
                               owned=owned, family=family)
        elif mtype in (RTM_NEWADDR, RTM_DELADDR) and len(body) >= IFADDRMSG.size:
            family, prefixlen, _fl, scope, index = IFADDRMSG.unpack_from(body)
            attrs = _attrs(body[IFADDRMSG.size :])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS) or b""
            address = socket.inet_ntop(family, raw) if len(raw) in (4, 16) else ""
            yield Notification(
                mtype, index, _text(attrs.get(IFA_LABEL)), address, prefixlen, scope, pid=pid
            )
        elif mtype in (RTM_NEWROUTE, RTM_DELROUTE) and len(body) >= RTMSG.size:
            _family, dst_len, _s, _t, table, _p, scope, _rt, _f = RTMSG.unpack_from(body)
            attrs = _attrs(body[RTMSG.size :])
            oif = attrs.get(4, b"")
            index = struct.unpack("=I", oif[:4])[0] if len(oif) >= 4 else 0
            yield Notification(mtype, index, scope=scope, dst_len=dst_len, table=table, pid=pid)


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset + RTATTR.size <= len(data):
        length, atype = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        out[atype & 0x3FFF] = data[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return out


def _text(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else ""


def link_dump_request(seq: int = 1) -> bytes:
    """RTM_GETLINK dump: the host's interface indexes, to name address notifications."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


class LinkMemory:
    """The kernel also announces links whose carrier or bridge port state changed: only a
    change to what netctl sets (up, MTU, master, MAC, alias), or a deletion, is news."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, int], tuple[object, ...]] = {}

    def changed(self, netns: str | None, n: Notification) -> bool:
        if n.type not in (RTM_NEWLINK, RTM_DELLINK):
            return True
        if n.family == AF_BRIDGE:
            return False  # a bridge port's state (forwarding 15 s after it joined): not ours
        key = (netns, n.index)
        if n.type == RTM_DELLINK:
            self._seen.pop(key, None)
            return True
        before = self._seen.get(key)
        self._seen[key] = n.owned
        return before != n.owned

    def forget(self, netns: str | None) -> None:
        for key in [k for k in self._seen if k[0] == netns]:
            del self._seen[key]


def relevant_in_container(n: Notification) -> bool:
    """A container's namespace is ours whole: links, global addresses, default routes."""
    if n.type in (RTM_NEWADDR, RTM_DELADDR):
        return n.scope != RT_SCOPE_LINK
    if n.type in (RTM_NEWROUTE, RTM_DELROUTE):
        return n.dst_len == 0 and n.table == RT_TABLE_MAIN
    return n.ifname != "lo"


def open_socket(name: str | None) -> socket.socket:
    """A netlink socket subscribed to link, address and route changes, in namespace `name`."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((0, GROUPS))
        return s

    if name is None:
        return make()
    with netns.entered(name):
        return make()


NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
FIREWALL = "\0firewall"  # the nftables socket's place among the namespaces' sockets
# netctl's nftables table, and the tables iptables-nft keeps netctl's iptables chains in
FIREWALL_TABLES = frozenset({"netctl", "filter", "nat", "raw"})


def open_nftables_socket() -> socket.socket | None:
    """A netfilter netlink socket subscribed to nftables changes (None: the kernel has none)."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_NETFILTER)
    except OSError:
        return None
    try:
        s.bind((0, 0))
        s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
    except OSError:
        s.close()
        return None
    return s


def nftables_tables(data: bytes) -> Iterator[str]:
    """The table each nftables notification in `data` concerns: NFTA_*_TABLE, attribute 1
    after the 4-byte nfgenmsg, in table, chain, rule, set and element messages alike."""
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        if msg_type >> 8 == NFNL_SUBSYS_NFTABLES:
            attrs = _attrs(data[offset + 20:offset + length])
            name = attrs.get(1)
            if name:
                yield _text(name)
        offset += (length + 3) & ~3


class NetlinkListener(threading.Thread):
    """Reads every subscribed socket, posts KernelChanged for what netctl owns."""

    def __init__(self, post: Post, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="netctl-netlink", daemon=True)
        self.post = post
        self.clock = clock
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._stop_r, select.EPOLLIN)
        self._by_fd: dict[int, tuple[str | None, socket.socket]] = {}
        self._by_ns: dict[str, tuple[socket.socket, int]] = {}  # name -> socket, namespace inode
        self._host_names: dict[str, str | None] = {}  # our host links -> their container
        self._host_index: dict[int, str] = {}
        self._links = LinkMemory()
        self._host = open_socket(None)
        self._add(None, self._host)
        self._firewall = open_nftables_socket()
        if self._firewall is not None:
            with self._lock:
                self._by_fd[self._firewall.fileno()] = (FIREWALL, self._firewall)
            self._epoll.register(self._firewall.fileno(), select.EPOLLIN)
        with contextlib.suppress(OSError):
            self._host.send(link_dump_request())

    # ---------------------------------------------------------------- called by the main thread

    def watch(self, namespaces: Collection[str], host_links: Mapping[str, str | None]) -> None:
        """Listen in exactly these namespaces; `host_links`: our bridges (None) and veths
        (their container) in the host's namespace."""
        with self._lock:
            self._host_names = dict(host_links)
        for name in list(self._by_ns):
            if name not in namespaces or _inode(name) != self._by_ns[name][1]:
                self._remove(name)
        for name in namespaces:
            inode = _inode(name)
            if name in self._by_ns or inode is None:
                continue
            try:
                sock = open_socket(name)
            except OSError as exc:  # vanished meanwhile: the next reconcile sees it
                log.debug("cannot listen in namespace", netns=name, error=str(exc))
                continue
            self._by_ns[name] = (sock, inode)
            self._add(name, sock)

    def forget(self, name: str) -> None:
        """Stop listening in a namespace (deleted behind our back: our socket would keep it)."""
        if name in self._by_ns:
            self._remove(name)

    def listening(self) -> set[str]:
        return set(self._by_ns)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self.is_alive():
            self.join(timeout=5)
        for name in list(self._by_ns):
            self._remove(name)
        self._host.close()
        if self._firewall is not None:
            self._firewall.close()
        self._epoll.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _add(self, name: str | None, sock: socket.socket) -> None:
        with self._lock:
            self._by_fd[sock.fileno()] = (name, sock)
        self._epoll.register(sock.fileno(), select.EPOLLIN)

    def _remove(self, name: str) -> None:
        sock, _ = self._by_ns.pop(name)
        with self._lock:
            self._by_fd.pop(sock.fileno(), None)
            self._links.forget(name)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(sock.fileno())
        sock.close()

    # ---------------------------------------------------------------- the thread

    def run(self) -> None:
        while True:
            try:
                ready = self._epoll.poll(1.0)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return  # closed under us: stopping
            for fd, _ in ready:
                if fd == self._stop_r:
                    return
                with self._lock:
                    entry = self._by_fd.get(fd)
                if entry is not None:
                    self._drain(*entry)

    def _drain(self, name: str | None, sock: socket.socket) -> None:
        if name == FIREWALL:
            return self._drain_firewall(sock)
        for _ in range(64):  # bounded: other sockets get their turn
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # notifications were lost: re-read that namespace
                    self.post(KernelChanged(name, "netlink notifications lost", self.clock()))
                    continue
                return  # closed by the main thread
            if not data:
                return
            now = self.clock()
            for n in parse(data):
                judged = self._judge(name, n, sock)
                if judged is not None:
                    self.post(KernelChanged(judged[0], judged[1], now))

    def _drain_firewall(self, sock: socket.socket) -> None:
        """One event per batch of nftables notifications that concern our tables."""
        tables: set[str] = set()
        for _ in range(64):
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    tables.add("(notifications lost)")
                    continue
                return
            if not data:
                break
            tables.update(t for t in nftables_tables(data) if t in FIREWALL_TABLES)
        if tables:
            what = f"firewall table {', '.join(sorted(tables))} changed"
            self.post(KernelChanged(None, what, self.clock()))

    def _judge(
        self, name: str | None, n: Notification, sock: socket.socket
    ) -> tuple[str | None, str] | None:
        """(the container concerned, what changed) if it is ours; None otherwise."""
        if not self._link_changed(name, n):
            return None
        if name is not None:
            return (name, n.describe()) if relevant_in_container(n) else None
        with self._lock:
            if n.type in (RTM_NEWLINK, RTM_DELLINK) and n.ifname:
                if n.type == RTM_DELLINK:
                    self._host_index.pop(n.index, None)
                else:
                    self._host_index[n.index] = n.ifname
            ifname = n.ifname or self._host_index.get(n.index, "")
            ours = ifname in self._host_names
            container = self._host_names.get(ifname)
        if not ours or (n.pid and n.pid == _port(sock)):
            return None  # not ours, or our own dump's reply rather than a change
        if n.type in (RTM_NEWADDR, RTM_DELADDR) and n.scope != RT_SCOPE_LINK:
            return container, n.describe(ifname)
        if n.type in (RTM_NEWLINK, RTM_DELLINK):
            return container, n.describe()
        return None


    def _link_changed(self, name: str | None, n: Notification) -> bool:
        with self._lock:
            return self._links.changed(name, n)


def _port(sock: socket.socket) -> int:
    try:
        return int(sock.getsockname()[0])
    except OSError:
        return -1


def _inode(name: str) -> int | None:
    try:
        return os.stat(netns.path(name)).st_ino
    except OSError:
        return None


# ------------------------------------------------------------------------------- files


IGNORED = frozenset({"opened", "closed_no_write"})  # our own reads cause these


class FolderHandler(FileSystemEventHandler):
    """Every change under the watched folder (the folder scan decides what matters)."""

    def __init__(self, post: Post, clock: Callable[[], float] = time.monotonic) -> None:
        self.post = post
        self.clock = clock

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED or (event.is_directory and event.event_type == "modified"):
            return
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        self.post(FolderChanged(os.fsdecode(event.src_path), event.event_type, self.clock(), dest))


class NetnsFilesHandler(FileSystemEventHandler):
    """/etc/netns/<container>/... edited, and /run/netns/<container> deleted."""

    def __init__(
        self, post: Post, etc_dir: str, run_dir: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.post = post
        self.etc_dir = etc_dir.rstrip("/")
        self.run_dir = run_dir.rstrip("/")
        self.clock = clock

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED:
            return
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw) if raw else ""
            folder, name = os.path.split(path)
            if folder == self.run_dir and name:
                if event.event_type in ("deleted", "moved") and raw == event.src_path:
                    self.post(KernelChanged(name, "namespace deleted", self.clock()))
            elif os.path.dirname(folder) == self.etc_dir and not event.is_directory:
                if not name.startswith("."):
                    container = os.path.basename(folder)
                    self.post(KernelChanged(container, f"file {path} {event.event_type}", self.clock()))
            elif folder == self.etc_dir and name and event.is_directory and event.event_type == "deleted":
                self.post(KernelChanged(name, f"folder {path} deleted", self.clock()))


class Inbox:
    """The main thread's queue: SimpleQueue.put is safe in signal handlers and threads."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def post(self, event: Event) -> None:
        self._q.put(event)

    def get(self, timeout: float | None) -> Event | None:
        try:
            return self._q.get(timeout=timeout) if timeout is None or timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return None


# ------------------------------------------------------------------------------- the DNS server


class ServiceWatcher(threading.Thread):
    """Posts KernelChanged the moment the embedded DNS server (its supervisor) exits, so that
    the controller restarts it within the drift debounce, not at the next resync. A pidfd
    becomes readable when its process ends: no polling while the server runs."""

    def __init__(self, post: Post, state_dir: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="netctl-services", daemon=True)
        self.post = post
        self.clock = clock
        self.pid_file = embedded_dns.Paths(state_dir).pid
        self._wanted = threading.Event()
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def watch(self, wanted: bool) -> None:
        """Whether the target has a DNS server at all (none: nothing to watch)."""
        if wanted:
            self._wanted.set()
        else:
            self._wanted.clear()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._wanted.set()

    def run(self) -> None:
        while self._wanted.wait() and not self._stopped(0):
            fd = self._pidfd()
            if fd is None:  # not started yet, or being restarted: look again soon
                if self._stopped(0.1):
                    return
                continue
            try:
                # poll, not select: with a socket per namespace this descriptor is past 1,024.
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                poller.register(self._stop_r, select.POLLIN)
                ready = [ready_fd for ready_fd, _ in poller.poll()]
            finally:
                os.close(fd)
            if self._stop_r in ready:
                return
            if self._wanted.is_set():
                self.post(KernelChanged(None, "embedded DNS server exited", self.clock()))

    def _pidfd(self) -> int | None:
        try:
            with open(self.pid_file, encoding="ascii") as f:
                return os.pidfd_open(int(f.read().strip()))
        except (OSError, ValueError):
            return None

    def _stopped(self, wait: float) -> bool:
        poller = select.poll()
        poller.register(self._stop_r, select.POLLIN)
        return bool(poller.poll(wait * 1000))
