"""Forwarding: names that are not local go to the upstream resolvers, from the host namespace.

- UDP first, the same query under a fresh random ID, over one of a few sockets per server
  that are replaced every 2048 queries (`Channel`: a socket per query cost more than the
  rest of forwarding; rotating keeps the source port moving); a truncated answer is
  passed on as the server sent it (Docker's resolver does so): the client asks again over
  TCP, and a client that asked over TCP is forwarded over TCP.
- Each server gets at most `per_try` seconds, and the whole exchange at most `budget`: a dead
  first server costs one second, not the client's whole timeout (aardvark-dns waits as long
  as the client does, so its fallback never helps: containers/aardvark-dns#482); when every
  server fails the client gets SERVFAIL in bounded time, never silence. Servers that only
  timed out are asked again while the budget lasts (one lost datagram is not a failure).
- A server that just failed is tried after the others for `penalty` seconds.

Replies are checked (ID, QR, question) before they are passed on (`_check`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from controller.dns.answer import with_id
from controller.errors import ServiceError

PORT = 53
EMBEDDED = "127.0.0.11"


class Upstreams:
    """Which servers to try, in which order, with what time limits."""

    def __init__(
        self,
        per_try: float = 1.0,
        budget: float = 2.5,
        penalty: float = 30.0,
        max_inflight: int = 2048,
        port: int = PORT,
    ) -> None:
        self.per_try = per_try
        self.budget = budget
        self.penalty = penalty
        self.max_inflight = max_inflight
        self.port = port
        self.host: tuple[str, ...] = ()
        self.never: frozenset[str] = frozenset({EMBEDDED})
        self.inflight = 0
        self._failed_at: dict[str, float] = {}
        self._channels: dict[str, list[Channel]] = {}
        self._next = 0

    def order(self, servers: Sequence[str]) -> list[str]:
        now = time.monotonic()
        usable = [s for s in dict.fromkeys(servers or self.host) if s not in self.never]
        fresh = [s for s in usable if now - self._failed_at.get(s, -1e9) > self.penalty]
        return fresh + [s for s in usable if s not in fresh]

    async def forward(self, query: dns.message.Message, wire: bytes, servers: Sequence[str],
                      tcp: bool) -> bytes | None:
        """The first good reply (with the client's ID), a SERVFAIL/REFUSED reply if that is all
        the servers gave, or None if none answered in time."""
        if self.inflight >= self.max_inflight:
            return None
        self.inflight += 1
        try:
            return await self._forward(query, wire, servers, tcp)
        finally:
            self.inflight -= 1

    async def _forward(self, query: dns.message.Message, wire: bytes, servers: Sequence[str],
                       tcp: bool) -> bytes | None:
        deadline = time.monotonic() + self.budget
        fallback: bytes | None = None
        candidates = self.order(servers)
        # Every server once, in order; then, while the budget lasts, again those that only
        # timed out (a lost datagram should not cost the client an answer).
        for _ in range(ROUNDS):
            timed_out = []
            for server in candidates:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return fallback
                try:
                    reply = await self._exchange(query, wire, server, tcp, min(self.per_try, remaining))
                except TimeoutError:
                    self._failed_at[server] = time.monotonic()
                    timed_out.append(server)
                    continue
                except (OSError, EOFError, ValueError, NotOurReply, dns.exception.DNSException):
                    self._failed_at[server] = time.monotonic()  # refused, unreachable: no retry
                    continue
                data, _, rcode = reply
                if rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                    fallback = fallback or data  # maybe the next server knows better
                    continue
                self._failed_at.pop(server, None)
                return data
            candidates = timed_out
        return fallback

    async def _exchange(self, query: dns.message.Message, wire: bytes, server: str, tcp: bool,
                        timeout: float) -> tuple[bytes, bool, int]:
        """(reply with the client's ID, truncated?, rcode) from one server, or an exception."""
        client_id = int.from_bytes(wire[:2], "big")
        async with asyncio.timeout(timeout):
            if tcp:
                sent = with_id(wire, new_id())
                data = await _tcp(sent, server, self.port)
                truncated, rcode = _check(data, sent, query)
            else:
                data, truncated, rcode = await self._channel(server).exchange(wire, query)
        return with_id(data, client_id), truncated, rcode

    def _channel(self, server: str) -> Channel:
        """One of a few shared sockets to `server`, each replaced after CHANNEL_USES queries
        (so that source ports keep changing, as a resolver's should)."""
        pool = self._channels.setdefault(server, [])
        pool[:] = [c for c in pool if not c.retired]
        if len(pool) < CHANNELS:
            pool.append(Channel(server, self.port))
        self._next = (self._next + 1) % len(pool)
        return pool[self._next]

    def close(self) -> None:
        for pool in self._channels.values():
            for c in pool:
                c.close()
        self._channels.clear()


ROUNDS = 3
CHANNELS = 4
CHANNEL_USES = 2048
Reply = tuple[bytes, bool, int]  # the wire, truncated?, rcode


class Channel:
    """A connected UDP socket to one upstream, shared by concurrent queries: each gets a
    random ID that no other pending query uses; replies are matched by ID and question.
    Cheaper than a socket per query (no socket, connect, epoll registration and close each
    time), which is most of the cost of forwarding in Python."""

    def __init__(self, server: str, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect((server, port))  # connected: only that server's datagrams come back
        self.pending: dict[int, tuple[asyncio.Future[Reply], dns.message.Message, bytes]] = {}
        self.uses = 0
        self.retired = False
        self.closed = False
        self.loop.add_reader(self.sock.fileno(), self._on_reply)

    async def exchange(self, wire: bytes, query: dns.message.Message) -> Reply:
        qid = new_id()
        while qid in self.pending:
            qid = new_id()
        sent = with_id(wire, qid)
        future: asyncio.Future[Reply] = self.loop.create_future()
        self.pending[qid] = (future, query, sent)
        self.uses += 1
        if self.uses >= CHANNEL_USES:
            self.retired = True  # no new queries; closed once the last reply is in
        try:
            self.sock.send(sent)
            return await future
        finally:
            self.pending.pop(qid, None)
            if self.retired and not self.pending:
                self.close()

    def _on_reply(self) -> None:
        for _ in range(64):
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. ECONNREFUSED: an ICMP error from the server
                for future, _, _ in self.pending.values():
                    if not future.done():
                        future.set_exception(OSError(exc.errno, exc.strerror))
                return
            qid = int.from_bytes(data[:2], "big")
            entry = self.pending.get(qid)
            if entry is None or entry[0].done():
                continue  # late or stray: its query has given up
            try:
                truncated, rcode = _check(data, entry[2], entry[1])
            except (dns.exception.DNSException, ValueError, NotOurReply):
                continue  # same ID, another question: not ours (spoofed or stale)
            entry[0].set_result((data, truncated, rcode))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.retired = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def _tcp(out: bytes, server: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(server, port)
    try:
        writer.write(len(out).to_bytes(2, "big") + out)  # RFC 1035 4.2.2 length prefix
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise EOFError("upstream closed the connection") from exc
    finally:
        writer.close()


class NotOurReply(ServiceError):
    """A datagram that is not the reply to the query we sent (late, stray or spoofed)."""


def _check(data: bytes, sent: bytes, query: dns.message.Message) -> tuple[bool, int]:
    """(truncated?, rcode) of `data` if it answers `sent` (ID, QR, question), else an error.

    Servers echo the question as they got it, so the common case is a comparison of bytes
    (the question section of `sent` ends after the query's name and 4 bytes of type and
    class); anything else is parsed by dnspython and compared as names are (case-blind).
    Parsing every reply costed more than all the rest of forwarding together."""
    if len(data) < 12 or data[:2] != sent[:2]:
        raise NotOurReply("not the ID we sent")
    flags = int.from_bytes(data[2:4], "big")
    if not flags & dns.flags.QR:
        raise NotOurReply("not a response")
    end = 12 + len(query.question[0].name.to_wire() or b"") + 4
    if data[4:6] != sent[4:6] or data[12:end] != sent[12:end]:
        reply = dns.message.from_wire(data, question_only=True)
        if reply.question != query.question:
            raise NotOurReply("not the question we asked")
    return bool(flags & dns.flags.TC), dns.rcode.from_flags(flags, 0)


_ids = bytearray()


def new_id() -> int:
    """A random query ID (unpredictable: from the kernel's CSPRNG, fetched in bulk)."""
    global _ids
    if not _ids:
        _ids = bytearray(os.urandom(4096))
    value = int.from_bytes(_ids[-2:], "big")
    del _ids[-2:]
    return value


def nameservers(resolv_conf: str) -> tuple[str, ...]:
    """The `nameserver` addresses of a resolv.conf, loopback ones included: the server
    forwards from the host's namespace, where the host's own stub resolver answers."""
    out: list[str] = []
    for raw in resolv_conf.splitlines():
        fields = raw.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1].split("%", 1)[0]
            try:
                out.append(str(ipaddress.ip_address(address)))
            except ValueError:
                continue
    return tuple(dict.fromkeys(out))


def read_nameservers(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            return nameservers(f.read())
    except OSError:
        return ()
