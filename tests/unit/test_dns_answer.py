"""controller/dns/answer.py: bytes in, bytes out, for local names (no sockets)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from topologies import container, network, resolved, spec

from controller.dns import records
from controller.dns.answer import Forward, Local, Responder
from controller.model import Attachment


def responder() -> Responder:
    s = spec(
        network("app", "10.1.0.0/24"),
        network("lock", "10.3.0.0/24", internal=True),
        network("priv", "10.2.0.0/24"),
        container("a", Attachment("app", aliases=("pool",))),
        container("b", Attachment("app", aliases=("pool",))),
        container("c", Attachment("app", aliases=("pool",))),
        container("secret", "priv"),
        container("vault", "lock"),
    )
    target, _ = resolved(s)
    return Responder(records.build(target))


def ask(r: Responder, view: str, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    wire = q.to_wire()
    out = r.cached(view, wire)
    if out is None:
        got = r.respond(view, wire)
        assert isinstance(got, Local), got
        out = got.wire
    reply = dns.message.from_wire(out)
    assert reply.id == q.id and reply.flags & dns.flags.QR
    return reply


def addresses(reply: dns.message.Message) -> list[str]:
    return [rd.address for rrset in reply.answer for rd in rrset]


def test_a_record_not_authoritative_with_dockers_ttl() -> None:
    r = responder()
    reply = ask(r, "b", "a")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.flags & dns.flags.AA
    assert addresses(reply) == ["10.1.0.2"] and reply.answer[0].ttl == 600


def test_aaaa_of_a_v4_only_name_is_nodata_not_nxdomain() -> None:
    reply = ask(responder(), "b", "a", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []


def test_round_robin_rotates_through_the_cache_and_without_it() -> None:
    r = responder()
    firsts = [addresses(ask(r, "a", "pool"))[0] for _ in range(6)]
    assert firsts == ["10.1.0.2", "10.1.0.3", "10.1.0.4"] * 2
    # Queries carrying EDNS options (cookies) bypass the cache but rotate all the same.
    cookie = dns.edns.GenericOption(dns.edns.COOKIE, b"12345678")
    firsts = [addresses(ask(r, "b", "pool", use_edns=0, options=[cookie]))[0] for _ in range(3)]
    assert sorted(firsts) == ["10.1.0.2", "10.1.0.3", "10.1.0.4"]


def test_cache_hits_carry_the_new_query_id() -> None:
    r = responder()
    ask(r, "b", "a")
    q = dns.message.make_query("a", "A")
    hit = r.cached("b", q.to_wire())
    assert hit is not None and dns.message.from_wire(hit).id == q.id


def test_names_the_asker_cannot_see_and_unknown_names_are_forwarded() -> None:
    r = responder()
    for name, rdtype in [("secret", "A"), ("example.com", "A"), ("a", "TXT"), ("a", "MX"), ("a", "ANY")]:
        got = r.respond("a", dns.message.make_query(name, rdtype).to_wire())
        assert isinstance(got, Forward) and got.servers == (), (name, rdtype)


def test_an_internal_only_container_gets_nxdomain_for_what_it_cannot_see() -> None:
    reply = ask(responder(), "vault", "secret")
    assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.flags & dns.flags.AA


def test_internal_only_container_is_refused_instead_of_forwarded() -> None:
    reply = ask(responder(), "vault", "example.com")
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.RA


def test_ptr() -> None:
    reply = ask(responder(), "b", "2.0.1.10.in-addr.arpa", "PTR")
    assert [rd.target.to_text() for rd in reply.answer[0]] == ["a.app."]


def test_garbage_is_dropped_or_formerr_and_responses_are_never_answered() -> None:
    r = responder()
    assert r.respond("a", b"\x01") is None
    q = dns.message.make_query("a", "A")
    q.flags |= dns.flags.QR
    assert r.respond("a", q.to_wire()) is None
    bad = r.respond("a", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff")
    assert isinstance(bad, Local)
    assert dns.message.from_wire(bad.wire).rcode() == dns.rcode.FORMERR


def test_big_answers_are_truncated_over_udp_and_whole_over_tcp() -> None:
    s = spec(network("app", "10.1.0.0/24"),
             *(container(f"c{i}", Attachment("app", aliases=("many",))) for i in range(60)))
    target, _ = resolved(s)
    r = Responder(records.build(target))
    wire = dns.message.make_query("many", "A").to_wire()
    udp = r.respond("c0", wire)
    assert isinstance(udp, Local)
    assert dns.message.from_wire(udp.wire).flags & dns.flags.TC
    tcp = r.respond("c0", wire, udp=False)
    assert isinstance(tcp, Local) and len(addresses(dns.message.from_wire(tcp.wire))) == 60
    assert r.cached("c0", wire) is None  # transport-dependent: never cached
