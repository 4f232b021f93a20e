"""controller/dns/upstream.py and control.py: the parts that need no namespace.

The forwarding test talks to servers this test starts on 127.0.0.x loopback addresses (never
anything else): one that answers, one that never does.
"""

from __future__ import annotations

import asyncio
import socket
import time

import dns.message
import dns.rcode
import dns.rrset
import pytest

from controller.dns import control
from controller.dns.upstream import Upstreams, nameservers


def test_nameservers_keep_loopback_and_drop_junk() -> None:
    text = "# x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver nope\nsearch a b\n" \
           "nameserver 192.0.2.1 ; comment\n"
    assert nameservers(text) == ("127.0.0.53", "fe80::1", "192.0.2.1")


def test_listen_addresses_parse() -> None:
    assert control.parse_listen("127.0.0.1") == ("127.0.0.1", 53)
    assert control.parse_listen("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert control.parse_listen("[::1]:5300") == ("::1", 5300)
    with pytest.raises(ValueError):
        control.parse_listen("localhost:53")


def test_failed_servers_are_tried_last_and_loops_are_never_tried() -> None:
    up = Upstreams()
    up.host = ("192.0.2.1", "192.0.2.2", "127.0.0.11")
    assert up.order(()) == ["192.0.2.1", "192.0.2.2"]
    up._failed_at["192.0.2.1"] = time.monotonic()
    assert up.order(()) == ["192.0.2.2", "192.0.2.1"]
    assert up.order(("192.0.2.9",)) == ["192.0.2.9"]  # the container's own `dns:` wins


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def forward_once(port: int) -> tuple[bytes | None, float, int]:
    loop = asyncio.get_running_loop()
    live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    live.bind(("127.0.0.2", port))
    live.setblocking(False)
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never reads: silence
    dead.bind(("127.0.0.3", port))
    seen = []

    def answer() -> None:
        data, peer = live.recvfrom(4096)
        q = dns.message.from_wire(data)
        seen.append(q.id)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.7"))
        live.sendto(r.to_wire(), peer)

    loop.add_reader(live.fileno(), answer)
    try:
        up = Upstreams(per_try=0.3, budget=1.0, port=port)
        q = dns.message.make_query("x.example.test", "A")
        started = time.monotonic()
        reply = await up.forward(q, q.to_wire(), ("127.0.0.3", "127.0.0.2"), tcp=False)
        took = time.monotonic() - started
        assert seen and seen[0] != q.id  # a fresh ID upstream...
        assert reply is not None and dns.message.from_wire(reply).id == q.id  # ...the client's back
        dead_only = await up.forward(q, q.to_wire(), ("127.0.0.3",), tcp=False)
        assert dead_only is None
        up.close()
        return reply, took, len(seen)
    finally:
        loop.remove_reader(live.fileno())
        live.close()
        dead.close()


def test_a_silent_server_costs_one_try_then_the_next_one_answers() -> None:
    reply, took, _ = asyncio.run(forward_once(free_port()))
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR
    assert 0.25 < took < 0.9  # one per-try timeout, not the whole budget


def test_control_socket_falls_back_to_an_abstract_name_for_long_state_dirs() -> None:
    assert control.Paths("/var/lib/netctl").control == "/var/lib/netctl/dns/control.sock"
    long = control.Paths("/srv/" + "x" * 120)
    assert long.control.startswith("\0netctl-dns-") and long.control != control.Paths("/y" * 80).control
