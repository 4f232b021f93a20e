"""Queries in, responses out, for local names (dnspython builds and parses every message).

`Responder` wraps one immutable `Records` table (one generation) with a response cache: a
local answer depends only on the asker and the query's bytes after its ID, so the second
time a container asks the same question the reply is the cached wire with the new ID put in
front: no parsing, no rendering (the hot path of the server). Several addresses for one
name are rendered once per rotation and handed out in turn (round robin). A new
generation is a new Responder, so a table swap also drops the cache, atomically.

No I/O here: the server feeds bytes in and sends what comes out; unit tests do the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from controller.dns.records import HIDDEN, MISS, Found, Pointer, Records

TTL = 600  # Docker's TTL for embedded records; clients such as glibc do not cache anyway
OUR_PAYLOAD = 1232  # EDNS payload we advertise (the DNS flag day 2020 value)
MAX_TCP = 65535
MAX_ROTATIONS = 16
CACHE_LIMIT = 100_000


class RoundRobin:
    """Pre-rendered rotations of one answer, handed out in turn."""

    __slots__ = ("_next", "tails")

    def __init__(self, tails: list[bytes]) -> None:
        self.tails = tails
        self._next = 0

    def take(self) -> bytes:
        tail = self.tails[self._next]
        self._next = (self._next + 1) % len(self.tails)
        return tail


@dataclass(frozen=True)
class Local:
    """A complete reply for the asker."""

    wire: bytes


@dataclass(frozen=True)
class Forward:
    """Not ours: send upstream (`servers` empty: the host's resolvers)."""

    query: dns.message.Message
    servers: tuple[str, ...]


Outcome = Local | Forward | None  # None: not a DNS query at all, drop it


Cache = dict[bytes, bytes | RoundRobin]  # query bytes after the ID -> reply bytes after the ID


class Responder:
    def __init__(self, records: Records, cache_limit: int = CACHE_LIMIT) -> None:
        self.records = records
        self.cache_limit = cache_limit
        self._caches: dict[str, Cache] = {}  # per view: no tuple to build per query
        self._forwards: dict[str, dict[bytes, Forward]] = {}
        self._size = 0
        self._turns: dict[tuple[str, dns.name.Name, int], int] = {}

    def cache_of(self, view: str) -> Cache:
        """The view's reply cache, for the server's hot loop (see `cached`)."""
        cache = self._caches.get(view)
        if cache is None:
            cache = self._caches[view] = {}
        return cache

    def cached(self, view: str, wire: bytes) -> bytes | None:
        """The hot path: a reply from the cache, or None."""
        hit = self.cache_of(view).get(wire[2:])
        if hit is None:
            return None
        return wire[:2] + (hit if hit.__class__ is bytes else hit.take())  # type: ignore[union-attr]

    def forwarding(self, view: str, wire: bytes) -> Forward | None:
        """A query already known to go upstream (its `query` has another ID: use the wire's)."""
        known = self._forwards.get(view)
        return None if known is None else known.get(wire[2:])

    def _remember(self, table: dict[bytes, Any], key: bytes, value: Any) -> None:
        """Store in `table` (a view's cache); everything is dropped when the limit is hit."""
        if self._size >= self.cache_limit:
            self._caches.clear()  # a flood of distinct questions: start over
            self._forwards.clear()
            self._size = 0
        table[key] = value
        self._size += 1

    def respond(self, view: str, wire: bytes, udp: bool = True) -> Outcome:
        """Parse `wire`, answer it from the table or say where to forward it."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except dns.exception.DNSException:
            return Local(_error_from_header(wire, dns.rcode.FORMERR))
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer those (reflection loops)
        if query.opcode() != dns.opcode.QUERY:
            return Local(_reply(query, dns.rcode.NOTIMP, True).to_wire())
        if len(query.question) != 1:
            return Local(_reply(query, dns.rcode.FORMERR, True).to_wire())
        question = query.question[0]
        v = self.records.views.get(view)
        forward = v is not None and v.forward
        answer = self.records.lookup(view, question.name.to_text(omit_final_dot=True))
        if forward and _forwarded(answer, question.rdtype):
            assert v is not None
            out = Forward(query, v.upstreams)
            if not query.options:
                self._remember(self._forwards.setdefault(view, {}), wire[2:], out)
            return out
        limit = udp_limit(query) if udp else MAX_TCP
        if answer is MISS:
            return Local(_render(_reply(query, dns.rcode.REFUSED, forward), query, limit))  # internal
        if answer is HIDDEN:  # on an internal network: nobody else to ask
            return Local(_render(_reply(query, dns.rcode.NXDOMAIN, forward), query, limit))
        assert isinstance(answer, Found | Pointer)
        rotations = _rotations(answer, question.rdtype)
        first = self._turn((view, question.name, question.rdtype), rotations)
        if query.options:  # EDNS options (cookies) make every query unique: nothing to cache
            return Local(_render(_answer(query, answer, forward, first), query, limit))
        wires = [
            _render(_answer(query, answer, forward, (first + i) % rotations), query, limit)
            for i in range(rotations)
        ]
        if all(len(w) <= 512 and not (int.from_bytes(w[2:4], "big") & dns.flags.TC) for w in wires):
            # Truncation depends on the transport, so only small complete replies are cached.
            tails = [w[2:] for w in wires]  # the ID goes in front at every hit
            entry = tails[0] if rotations == 1 else RoundRobin(tails[1:] + tails[:1])
            self._remember(self.cache_of(view), wire[2:], entry)
        return Local(wires[0])

    def _turn(self, key: tuple[str, dns.name.Name, int], rotations: int) -> int:
        """Round robin over queries that miss the cache, per asker, name and type."""
        if rotations == 1:
            return 0
        if len(self._turns) >= self.cache_limit:
            self._turns.clear()
        turn = self._turns.get(key, 0)
        self._turns[key] = turn + 1
        return turn % rotations


# Docker's resolver answers A, AAAA and PTR of the names the asker may see; everything else
# (unknown names, names of networks it is not on, TXT/MX/ANY of container names) goes
# upstream, so that a host `b1` of the corporate DNS still resolves.
_LOCAL_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.PTR})


def _forwarded(answer: object, qtype: int) -> bool:
    if answer is MISS or answer is HIDDEN:
        return True
    return qtype not in _LOCAL_TYPES


def udp_limit(query: dns.message.Message) -> int:
    """The largest UDP reply the client takes: 512, or its EDNS payload size."""
    return max(512, min(query.payload, MAX_TCP)) if query.edns >= 0 else 512


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode, ra: bool) -> dns.message.Message:
    r = dns.message.make_response(query, recursion_available=ra, our_payload=OUR_PAYLOAD)
    r.set_rcode(rcode)
    return r


def _wanted(answer: Found, qtype: int) -> list[str]:
    if qtype == dns.rdatatype.ANY:
        return list(answer.addresses)
    v6 = qtype == dns.rdatatype.AAAA
    if qtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return []
    return [a for a in answer.addresses if (":" in a) == v6]


def _rotations(answer: Found | Pointer, qtype: int) -> int:
    if isinstance(answer, Pointer):
        return 1
    return max(1, min(len(_wanted(answer, qtype)), MAX_ROTATIONS))


def _answer(query: dns.message.Message, answer: Found | Pointer, ra: bool, shift: int) -> dns.message.Message:
    """The reply, its addresses rotated by `shift` (NODATA when the name has no such record)."""
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    r = _reply(query, dns.rcode.NOERROR, ra)  # not authoritative: Docker's AA is clear
    if isinstance(answer, Pointer):
        if qtype in (dns.rdatatype.PTR, dns.rdatatype.ANY):
            r.answer.append(dns.rrset.from_text(qname, TTL, "IN", "PTR", answer.target + "."))
        return r
    wanted = _wanted(answer, qtype)
    rotated = wanted[shift:] + wanted[:shift]
    for rdtype, v6 in ((dns.rdatatype.A, False), (dns.rdatatype.AAAA, True)):
        mine = [a for a in rotated if (":" in a) == v6]
        if mine:
            r.answer.append(dns.rrset.from_text_list(qname, TTL, "IN", rdtype, mine))
    return r


def _render(reply: dns.message.Message, query: dns.message.Message, limit: int) -> bytes:
    try:
        return reply.to_wire(max_size=limit, want_shuffle=False)  # our order: round robin
    except dns.exception.TooBig:
        return truncated(query)


def truncated(query: dns.message.Message) -> bytes:
    """An empty reply with TC set: the client asks again over TCP (RFC 7766)."""
    r = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    r.flags |= dns.flags.TC
    return r.to_wire()


def servfail(query: dns.message.Message) -> bytes:
    return _reply(query, dns.rcode.SERVFAIL, True).to_wire()


def _error_from_header(wire: bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A reply to a query we could not parse: its ID and opcode, no question."""
    r = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
    r.flags = dns.flags.QR | (int.from_bytes(wire[2:4], "big") & (dns.flags.RD | 0x7800))
    r.set_rcode(rcode)
    return r.to_wire()


def with_id(wire: bytes, query_id: int) -> bytes:
    """The same message with another ID (the first two bytes of every DNS message)."""
    return query_id.to_bytes(2, "big") + wire[2:]
