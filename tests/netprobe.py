"""Real-packet probes for tests, run inside a sandbox host.

    netprobe.py serve PORT NS...          TCP and UDP servers in each namespace ('-': the host's);
                                          TCP answers with the peer's address, UDP echoes it.
    netprobe.py tcp SRC DST PORT...       try TCP connections in parallel; print JSON results
                                          {"SRC>DST:PORT": "peer seen by the server" | null}
    netprobe.py udp SRC DST PORT...       the same over UDP

Each probe runs in its own thread, which joins the source namespace with setns(2): a
whole connectivity matrix costs about one timeout, not one process per pair.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

CLONE_NEWNET = 0x40000000
# Blocked probes cost one timeout, in parallel; 2 s keeps allowed ones passing on a loaded machine.
TIMEOUT = float(os.environ.get("NETPROBE_TIMEOUT", "2.0"))
_libc = ctypes.CDLL(None, use_errno=True)


def enter(ns: str) -> None:
    """Move the calling thread into namespace `ns` ('-' stays in the host's)."""
    if ns == "-":
        return
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def serve(port: int, namespaces: list[str]) -> None:
    sel = selectors.DefaultSelector()
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    for ns in namespaces:
        enter(ns)
        for family, any_addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                tcp.bind((any_addr, port))
            except OSError:
                tcp.close()
                continue
            tcp.listen(64)
            sel.register(tcp, selectors.EVENT_READ, "tcp")
            udp = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp.bind((any_addr, port))
            sel.register(udp, selectors.EVENT_READ, "udp")
        _libc.setns(home, CLONE_NEWNET)
    answer_forever(sel, reply=True)


def answer_forever(sel: selectors.BaseSelector, reply: bool, report: bool = False) -> None:
    """Accept and read on the registered sockets (data: "tcp" or "udp"); `reply`: send the
    peer its own address; `report`: print "PROTO PEER" for each."""
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "tcp":
                conn, peer = sock.accept()
                with conn:
                    if reply:
                        conn.sendall(peer[0].encode())
            else:
                _, peer = sock.recvfrom(2048)
                if reply:
                    sock.sendto(peer[0].encode(), peer)
            if report:
                print(f"{key.data} {peer[0]}", flush=True)


def probe(proto: str, src: str, dst: str, port: int) -> str | None:
    result: list[str | None] = [None]

    def run() -> None:
        enter(src)
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        try:
            if proto == "tcp":
                with socket.create_connection((dst, port), timeout=TIMEOUT) as s:
                    s.settimeout(TIMEOUT)
                    result[0] = s.recv(256).decode() or None
            else:
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.settimeout(TIMEOUT)
                    s.sendto(b"ping", (dst, port))
                    result[0] = s.recvfrom(256)[0].decode()
        except OSError:
            result[0] = None

    # A fresh thread per probe: setns changes only the calling thread, which then ends.
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return result[0]


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "serve":
        serve(int(argv[1]), argv[2:])
        return
    triples = [(argv[i], argv[i + 1], int(argv[i + 2])) for i in range(1, len(argv), 3)]
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = {f"{s}>{d}:{p}": pool.submit(probe, mode, s, d, p) for s, d, p in triples}
        print(json.dumps({k: f.result() for k, f in futures.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
