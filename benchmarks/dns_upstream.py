#!/usr/bin/env python3
"""A small upstream DNS server for tests and benchmarks, run inside a sandbox host.

    python benchmarks/dns_upstream.py --listen 198.18.0.53 [--port 53] [--log FILE]

Answers the names of the zone example.test (dnspython builds the messages), so that
forwarding can be tested and measured without any real resolver:

    big.*.example.test  60 A records (198.51.100.1-60): more than 512 bytes, so over UDP the
                        reply is truncated (TC, no answers) and the client asks again over TCP
    nx.*.example.test   NXDOMAIN
    *.example.test      A 198.51.100.7, AAAA 2001:db8::7
    anything else       NXDOMAIN (so that a search domain does not turn a name into another)

`--log` appends one line per query ("udp NAME TYPE" / "tcp NAME TYPE") for tests to read.
Replies are cached by query bytes (like the embedded server) so that the upstream is not the
bottleneck of a forwarding benchmark. Prints "ready" once its sockets are bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from typing import TextIO

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

BIG = [f"198.51.100.{i}" for i in range(1, 61)]


def answer(wire: bytes, udp: bool) -> tuple[bytes, str]:
    query = dns.message.from_wire(wire)
    q = query.question[0]
    name = q.name.to_text(omit_final_dot=True).lower()
    reply = dns.message.make_response(query, recursion_available=True)
    if name.startswith("nx.") or not (name == "example.test" or name.endswith(".example.test")):
        reply.set_rcode(dns.rcode.NXDOMAIN)
    elif name.startswith("big."):
        if q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text_list(q.name, 60, "IN", "A", BIG))
    elif q.rdtype == dns.rdatatype.A:
        reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "198.51.100.7"))
    elif q.rdtype == dns.rdatatype.AAAA:
        reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "AAAA", "2001:db8::7"))
    limit = (max(512, query.payload) if query.edns >= 0 else 512) if udp else 65535
    try:
        out = reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply.answer.clear()
        reply.flags |= dns.flags.TC
        out = reply.to_wire()
    return out, f"{name} {dns.rdatatype.to_text(q.rdtype)}"


class Upstream:
    def __init__(self, log: TextIO | None) -> None:
        self.log = log
        self.cache: dict[bytes, bytes] = {}

    def reply(self, wire: bytes, udp: bool) -> bytes | None:
        hit = self.cache.get(wire[2:]) if udp and self.log is None else None
        if hit is not None:
            return wire[:2] + hit
        try:
            out, what = answer(wire, udp)
        except (dns.exception.DNSException, IndexError):
            return None
        if self.log is not None:
            self.log.write(f"{'udp' if udp else 'tcp'} {what}\n")
            self.log.flush()
        elif udp and len(self.cache) < 100_000:
            self.cache[wire[2:]] = out[2:]
        return out

    def on_udp(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                return
            out = self.reply(data, True)
            if out is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(out, peer)

    async def on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                out = self.reply(await reader.readexactly(size), False)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", action="append", required=True)
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--log")
    p.add_argument("--seconds", type=float, default=3600, help="exit after this long (bounded runs)")
    args = p.parse_args()
    log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    up = Upstream(log)
    loop = asyncio.get_running_loop()
    for address in args.listen:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.bind((address, args.port))
        udp.setblocking(False)
        loop.add_reader(udp.fileno(), up.on_udp, udp)
        await asyncio.start_server(up.on_tcp, address, args.port)
    print("ready", flush=True)
    await asyncio.sleep(args.seconds)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
