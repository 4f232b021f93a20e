"""The DNS server: one asyncio loop in the host's namespace serving every container.

For each container that uses the embedded DNS, a UDP and a TCP socket are bound to
127.0.0.11 *inside that container's namespace*: the loop thread enters the namespace,
creates and binds them, and comes straight back (a socket stays in the namespace it was
created in; lo's 127.0.0.0/8 route makes the address local). As Docker does, they take
ports the kernel picks, and nft rules in the container's own namespace send 127.0.0.11:53
there (see `redirect`): port 53 stays free for a DNS server of the container's own. The
socket a query arrives on says who asks, so each container gets its own view of the names
(records.Records).
Forwarded queries leave from the host's namespace (controller.dns.upstream).

Reloads never lose a query: the records of a new generation are parsed off the loop, then
swapped in with one assignment while every socket stays open; only the sockets of containers
that went away are closed and those of new ones opened (aardvark-dns re-creates its sockets
on every reload and drops what arrives meanwhile: containers/aardvark-dns#389). Every socket
is also handed to the supervisor (controller.dns.supervisor), which keeps a copy: if this
process dies, its successor inherits the very same sockets, and queries that arrived in
between wait in the kernel's buffers instead of being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import os
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any

import structlog

from controller.dns import records
from controller.dns.answer import Local, Responder, servfail, truncated, udp_limit, with_id
from controller.dns.control import Paths, listen_addresses, read_text
from controller.dns.upstream import EMBEDDED, Upstreams, read_nameservers
from controller.kernel import fds, netns, nft

log = structlog.get_logger("netctl.dns")

HOST_RESOLV_CONF = "/etc/resolv.conf"
PORT = 53
TICK = 0.5  # fallback polling of the published files and of namespaces (reloads are pushed)
IDLE_EXIT = 2.0  # seconds with nothing to serve before the server exits
BATCH = 64  # datagrams read per wake-up
TCP_IDLE = 10.0
TCP_SESSIONS = 512
CONTROL = "control"
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; not in typeshed
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RCVBUF = 1 << 20  # a ceiling, not an allocation: used only while queries queue up

Inherited = dict[str, tuple[int, list[int]]]  # key -> (namespace inode, fds), from the supervisor


class Listener:
    """The sockets that serve one view at one address (a container's 127.0.0.11:53, or an
    address on the host)."""

    __slots__ = ("ino", "key", "tcp", "udp", "view")

    def __init__(self, key: str, view: str, ino: int, udp: socket.socket, tcp: socket.socket) -> None:
        self.key = key
        self.view = view
        self.ino = ino
        self.udp = udp
        self.tcp = tcp


def bind_pair(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on (address, port), in the calling thread's namespace."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        for s in (udp, tcp):
            s.setblocking(False)
            # Bind even if lo is not up yet in a namespace being set up.
            s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Room for a burst that arrives while the loop is busy or descheduled: queries wait
        # in the kernel instead of being dropped (SO_RCVBUFFORCE: root may pass rmem_max).
        try:
            udp.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        udp.bind((address, port))
        tcp.bind((address, port))
        tcp.listen(256)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    # Two per container: kept above select()'s range, where libnftables' own socket must be.
    return fds.lift_socket(udp), fds.lift_socket(tcp)


REDIRECT_TABLE = "netctl_dns"


def redirect(address: str, port: int, udp_port: int, tcp_port: int) -> None:
    """In the calling thread's namespace, one transaction: address:port <-> our sockets' ports.

    Stateless, unlike Docker's DNAT: the port is rewritten on the way in and back on the way
    out, both on the output hook (it is loopback traffic), untracked. A NAT rule would turn
    on conntrack in every container's namespace for nothing but this (and cost apply and
    delete time per container); rewriting two header fields needs no state at all."""
    t = REDIRECT_TABLE
    rules = "".join(
        f"add rule ip {t} output ip daddr {address} {proto} dport {port} {proto} dport set {ours} notrack\n"
        f"add rule ip {t} output ip saddr {address} {proto} sport {ours} {proto} sport set {port} notrack\n"
        for proto, ours in (("udp", udp_port), ("tcp", tcp_port))
    )
    nft.run(
        f"add table ip {t}\nflush table ip {t}\n"
        f"add chain ip {t} output {{ type filter hook output priority raw; policy accept; }}\n" + rules
    )


def own_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(netns.path(name)).st_ino
    except OSError:
        return None


class Server:
    def __init__(
        self, paths: Paths, inherited: Inherited | None = None, store: socket.socket | None = None,
        upstreams: Upstreams | None = None,
    ) -> None:
        self.paths = paths
        self.inherited = dict(inherited or {})
        self.store = store
        self.upstreams = upstreams or Upstreams()
        self.responder = Responder(records.Records.of({}, {}))
        self.generation = 0
        self.listen: list[tuple[str, int]] = []
        self.listeners: dict[str, Listener] = {}
        self.errors: dict[str, str] = {}
        self.stats = {"cached": 0, "answered": 0, "forwarded": 0, "failed": 0}
        self.started = time.time()
        self._stamp: tuple[Any, ...] = ()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp_sessions = 0
        self._idle_since: float | None = None
        self._control: socket.socket | None = None
        self._reload_lock = asyncio.Lock()
        self._stop: asyncio.Future[int] | None = None

    # ------------------------------------------------------------------ life

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, self.stop, 0)
        loop.add_signal_handler(signal.SIGINT, self.stop, 0)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload(force=True)))
        await self.reload(force=True)
        self._open_control()
        for key, (_, descriptors) in self.inherited.items():  # inherited, but no longer wanted
            for fd in descriptors:
                os.close(fd)
            self._drop(key)
        self.inherited.clear()
        ticker = loop.create_task(self._tick())
        log.info("serving", generation=self.generation, listeners=len(self.listeners))
        try:
            return await self._stop
        finally:
            ticker.cancel()
            for key in list(self.listeners):
                self._close(key, tell_store=False)

    def stop(self, code: int = 0) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(code)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.reload()
                self._maybe_exit_idle()
            except Exception as exc:  # keep serving whatever happens to one reload
                log.error("reload failed", error=str(exc))

    # ------------------------------------------------------------------ reload

    async def reload(self, force: bool = False) -> None:
        """Take a new generation if a published file changed, then (always) make the sockets
        match it: closes those of namespaces that disappeared or were re-created."""
        async with self._reload_lock:
            stamp = tuple(_stamp(p) for p in (self.paths.records, HOST_RESOLV_CONF, self.paths.listen))
            if force or stamp != self._stamp:
                text = read_text(self.paths.records)
                try:
                    generation, table = (
                        await asyncio.to_thread(records.from_json, text) if text
                        else (0, records.Records.of({}, {}))
                    )
                    self.errors.pop("records", None)
                except (ValueError, KeyError, TypeError) as exc:  # keep serving what we have
                    self.errors["records"] = f"{self.paths.records}: {exc!r}"
                    generation, table = self.generation, self.responder.records
                try:
                    self.listen = listen_addresses(self.paths)
                    self.errors.pop("listen", None)
                except ValueError as exc:
                    self.errors["listen"] = str(exc)
                self.upstreams.host = read_nameservers(HOST_RESOLV_CONF)
                # Never forward to ourselves: 127.0.0.11 and the host listeners on port 53.
                self.upstreams.never = frozenset({EMBEDDED, *(a for a, p in self.listen if p == PORT)})
                self.responder = Responder(table)  # the swap: one assignment, sockets untouched
                self.generation = generation
                self._stamp = stamp
                # What is loaded lives until the next generation: keep it out of the cyclic
                # collector's full passes, which would otherwise stall queries for milliseconds.
                gc.unfreeze()  # the previous generation may now be garbage
                gc.collect()
                gc.freeze()
                log.info("loaded", generation=generation, containers=len(table.containers))
            self._reconcile()

    def _wanted(self) -> dict[str, tuple[str, str | None, str, int]]:
        """key -> (view, namespace (None: the host's), address, port)."""
        want: dict[str, tuple[str, str | None, str, int]] = {}
        for v in self.responder.records.containers:
            want[f"c:{v.name}"] = (v.name, v.netns, EMBEDDED, PORT)
        for address, port in self.listen:
            want[f"h:{address}:{port}"] = (records.HOST_VIEW, None, address, port)
        return want

    def _reconcile(self) -> None:
        want = self._wanted()
        home = own_netns_inode()
        for key, listener in list(self.listeners.items()):
            spec = want.get(key)
            if spec is None or listener.ino != (netns_inode(spec[1]) if spec[1] else home):
                self._close(key)
        for key, (view, ns, address, port) in want.items():
            if key in self.listeners:
                continue
            ino = netns_inode(ns) if ns else home
            if ino is None:
                self.errors[key] = f"namespace {ns} does not exist (yet)"
                continue
            try:
                self._open(key, view, ns, ino, address, port)
                self.errors.pop(key, None)
            except OSError as exc:
                self.errors[key] = f"{address}:{port}: {exc.strerror or exc}"
            except nft.NftError as exc:  # the 127.0.0.11:53 redirect could not be written
                self.errors[key] = f"{address}:{port}: nft: {exc}"
        for key in [k for k in self.errors if k.startswith(("c:", "h:")) and k not in want]:
            del self.errors[key]

    # ------------------------------------------------------------------ sockets

    def _open(self, key: str, view: str, ns: str | None, ino: int, address: str, port: int) -> None:
        kept = self.inherited.pop(key, None)
        if kept is not None and kept[0] == ino:
            udp, tcp = (socket.socket(fileno=fd) for fd in kept[1])
        else:
            if kept is not None:
                for fd in kept[1]:
                    os.close(fd)
            if ns is None:
                udp, tcp = bind_pair(address, port)
            else:
                with netns.entered(ns):
                    if own_netns_inode() != ino:
                        raise OSError(f"namespace {ns} was replaced meanwhile")
                    udp, tcp = bind_pair(address, 0)
                    try:
                        redirect(address, port, udp.getsockname()[1], tcp.getsockname()[1])
                    except (OSError, nft.NftError):
                        udp.close()
                        tcp.close()
                        raise
            self._keep(key, ino, [udp.fileno(), tcp.fileno()])
        udp.setblocking(False)
        tcp.setblocking(False)
        listener = Listener(key, view, ino, udp, tcp)
        loop = asyncio.get_running_loop()
        loop.add_reader(udp.fileno(), self._on_udp, listener)
        loop.add_reader(tcp.fileno(), self._on_accept, listener)
        self.listeners[key] = listener

    def _close(self, key: str, tell_store: bool = True) -> None:
        listener = self.listeners.pop(key)
        loop = asyncio.get_running_loop()
        for s in (listener.udp, listener.tcp):
            loop.remove_reader(s.fileno())
            s.close()
        if tell_store:
            self._drop(key)

    def _keep(self, key: str, ino: int, fds: list[int]) -> None:
        if self.store is None:
            return
        with contextlib.suppress(OSError):
            socket.send_fds(self.store, [json.dumps({"op": "keep", "key": key, "ino": ino}).encode()], fds)

    def _drop(self, key: str) -> None:
        if self.store is None:
            return
        with contextlib.suppress(OSError):
            self.store.send(json.dumps({"op": "drop", "key": key}).encode())

    # ------------------------------------------------------------------ UDP

    def _on_udp(self, listener: Listener) -> None:
        """The hot path: drain the socket, answer from the cache when possible (a dict
        lookup and a concatenation per query; everything else is in _miss_udp)."""
        recvfrom, sendto, view = listener.udp.recvfrom, listener.udp.sendto, listener.view
        cache = self.responder.cache_of(view)
        stats = self.stats
        for _ in range(BATCH):
            try:
                data, peer = recvfrom(4096)
            except OSError:  # BlockingIOError: drained
                return
            hit = cache.get(data[2:])
            if hit is not None:
                reply = data[:2] + (hit if hit.__class__ is bytes else hit.take())  # type: ignore[union-attr]
                stats["cached"] += 1
            else:
                miss = self._miss_udp(listener, data, peer)
                if miss is None:
                    continue
                reply = miss
            try:  # noqa: SIM105 (contextlib.suppress costs a context manager per query)
                sendto(reply, peer)
            except OSError:
                pass

    def _miss_udp(self, listener: Listener, data: bytes, peer: Any) -> bytes | None:
        forward = self.responder.forwarding(listener.view, data)
        if forward is None:
            out = self.responder.respond(listener.view, data, udp=True)
            if out is None:
                return None
            if isinstance(out, Local):
                self.stats["answered"] += 1
                return out.wire
            forward = out
        self._spawn(self._forward_udp(listener, data, peer, forward.query, forward.servers))
        return None

    async def _forward_udp(self, listener: Listener, data: bytes, peer: Any, query: Any,
                           servers: tuple[str, ...]) -> None:
        reply = await self._forward(query, data, servers, tcp=False)
        if len(reply) > udp_limit(query):
            reply = with_id(truncated(query), int.from_bytes(data[:2], "big"))
        with contextlib.suppress(OSError):  # the listener may have closed meanwhile
            listener.udp.sendto(reply, peer)

    async def _forward(self, query: Any, data: bytes, servers: tuple[str, ...], tcp: bool) -> bytes:
        """The upstream's reply, or SERVFAIL; with the ID of `data` (`query` may be a cached
        template with another ID)."""
        self.stats["forwarded"] += 1
        reply = await self.upstreams.forward(query, data, servers, tcp)
        if reply is None:
            self.stats["failed"] += 1
            return with_id(servfail(query), int.from_bytes(data[:2], "big"))
        return reply

    # ------------------------------------------------------------------ TCP

    def _on_accept(self, listener: Listener) -> None:
        for _ in range(BATCH):
            try:
                conn, _ = listener.tcp.accept()
            except OSError:
                return
            if self._tcp_sessions >= TCP_SESSIONS:
                conn.close()
                continue
            conn.setblocking(False)
            self._spawn(self._tcp_session(listener, conn))

    async def _tcp_session(self, listener: Listener, conn: socket.socket) -> None:
        """RFC 7766: length-prefixed queries, several per connection, idle timeout."""
        loop = asyncio.get_running_loop()
        self._tcp_sessions += 1
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    head = await _recv_exactly(loop, conn, 2)
                    if head is None:
                        return
                    data = await _recv_exactly(loop, conn, int.from_bytes(head, "big"))
                if data is None:
                    return
                reply = self.responder.cached(listener.view, data)
                if reply is None:
                    out = self.responder.forwarding(listener.view, data) or self.responder.respond(
                        listener.view, data, udp=False
                    )
                    if out is None:
                        return
                    if isinstance(out, Local):
                        reply = out.wire
                    else:
                        reply = await self._forward(out.query, data, out.servers, tcp=True)
                await loop.sock_sendall(conn, len(reply).to_bytes(2, "big") + reply)
        except (TimeoutError, OSError):
            return
        finally:
            self._tcp_sessions -= 1
            conn.close()

    # ------------------------------------------------------------------ control

    def _open_control(self) -> None:
        kept = self.inherited.pop(CONTROL, None)
        if kept is not None:
            sock = socket.socket(fileno=kept[1][0])
        else:
            address = self.paths.control
            abstract = address.startswith("\0")
            if not abstract:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address)  # stale: we hold the server lock
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address)
            if not abstract:
                os.chmod(address, 0o600)
            sock.listen(64)
            self._keep(CONTROL, 0, [sock.fileno()])
        sock.setblocking(False)
        self._control = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_control)

    def _on_control(self) -> None:
        assert self._control is not None
        try:
            conn, _ = self._control.accept()
        except OSError:
            return
        conn.setblocking(False)
        self._spawn(self._control_session(conn))

    async def _control_session(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = b""
            async with asyncio.timeout(RELOAD_WAIT):
                while not data.endswith(b"\n") and len(data) < 65536:
                    chunk = await loop.sock_recv(conn, 65536)
                    if not chunk:
                        return
                    data += chunk
                op = json.loads(data).get("op")
                if op == "reload":
                    await self.reload()
                reply = self.status() if op in ("reload", "status") else {"error": f"unknown op {op!r}"}
                await loop.sock_sendall(conn, json.dumps(reply).encode() + b"\n")
        except (TimeoutError, OSError, ValueError) as exc:
            log.warning("control request failed", error=str(exc))
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "supervisor": os.getppid(),
            "generation": self.generation,
            "containers": sorted(k[2:] for k in self.listeners if k.startswith("c:")),
            "host_listeners": sorted(k[2:] for k in self.listeners if k.startswith("h:")),
            "upstreams": list(self.upstreams.host),
            "errors": dict(self.errors),
            "queries": dict(self.stats),
            "uptime": round(time.time() - self.started, 1),
        }

    # ------------------------------------------------------------------ idle exit

    def _maybe_exit_idle(self) -> None:
        """Nothing to serve for a while: exit, but only while holding the state lock, so that
        no apply can publish new records between our last look and our exit."""
        if self.listeners or self.listen:
            self._idle_since = None
            return
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
            return
        if now - self._idle_since < IDLE_EXIT:
            return
        fd = os.open(os.path.join(self.paths.state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        if _stamp(self.paths.records) != self._stamp[0]:
            os.close(fd)  # something new was published: the next tick loads it
            return
        if not self.paths.control.startswith("\0"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths.control)
        elif self._control is not None:  # an abstract name is freed when its sockets close
            self._drop(CONTROL)
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            self._control.close()
            self._control = None
        log.info("nothing to serve: exiting")
        self.stop(0)  # fd (and the state lock) stay held until the process exits

    # ------------------------------------------------------------------ helpers

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


RELOAD_WAIT = 10.0


async def _recv_exactly(loop: asyncio.AbstractEventLoop, conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(conn, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def run(paths: Paths, inherited: Inherited | None = None, store: socket.socket | None = None) -> int:
    """Serve until stopped; the exit code tells the supervisor whether to restart (non-zero)."""
    return asyncio.run(Server(paths, inherited, store).run())
