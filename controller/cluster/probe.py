"""Is UDP 4789 open from this host to each peer? A probe answered through etcd.

The kernel's VXLAN socket owns port 4789 on every host, so nothing can listen there to
echo. But a raw IPv4 socket sees a copy of every UDP datagram the host receives, including
those the VXLAN socket takes. So: the sender sends a few VXLAN-shaped datagrams with a
reserved VNI (no network uses it: the kernel drops them after we looked) carrying a nonce;
each peer's agent, filtering its raw socket with a small BPF program (so it never sees
real overlay traffic), writes `/netctl/probes/NONCE/HOST` when one arrives; the sender
reads those keys. The answer travels over etcd (TCP), so the probe tests exactly one
direction, the one the sender needs; every host probing its peers tests them all.
"""

from __future__ import annotations

import contextlib
import ctypes
import secrets
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from controller.cluster import keys
from controller.cluster.etcd import Etcd, EtcdError
from controller.drivers.overlay import VXLAN_PORT

log = structlog.get_logger("netctl.probe")

PROBE_VNI = 0xFFFFFE  # reserved for probes; cluster VNIs start at 4096
MAGIC = b"netctl-probe "
SO_ATTACH_FILTER = 26


def packet(nonce: str, sender: str) -> bytes:
    """A VXLAN header (flags I, the probe VNI) followed by our marker instead of a frame."""
    return struct.pack("!II", 0x08000000, PROBE_VNI << 8) + MAGIC + f"{nonce} {sender}".encode()


def parse(datagram: bytes) -> tuple[str, str] | None:
    """(nonce, sender) from a probe's UDP payload, None for anything else."""
    if len(datagram) < 8 + len(MAGIC) or datagram[4:8] != struct.pack("!I", PROBE_VNI << 8):
        return None
    body = datagram[8:]
    if not body.startswith(MAGIC):
        return None
    fields = body[len(MAGIC):].decode(errors="replace").split()
    return (fields[0], fields[1]) if len(fields) == 2 else None


def _bpf_only_probes() -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """A classic BPF program for a raw IPv4 socket: accept UDP to port 4789 whose VNI word
    is the probe's, drop everything else in the kernel."""
    insns = [
        (0xB1, 0, 0, 0),                 # ldxb 4*([0]&0xf)     X = IP header length
        (0x48, 0, 0, 2),                 # ldh [x+2]            UDP destination port
        (0x15, 0, 3, VXLAN_PORT),        # jeq #4789 ? next : drop
        (0x40, 0, 0, 12),                # ld [x+12]            VNI << 8 | reserved
        (0x15, 0, 1, PROBE_VNI << 8),    # jeq #probe ? accept : drop
        (0x06, 0, 0, 0xFFFF),            # accept
        (0x06, 0, 0, 0),                 # drop
    ]
    code = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(code, len(code))
    return struct.pack("HL", len(insns), ctypes.addressof(buf)), buf


class Responder:
    """The agent's side: acknowledge probes that reach this host, through etcd."""

    def __init__(self, host: str, client: Etcd) -> None:
        self.host = host
        self.client = client
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
            fprog, buf = _bpf_only_probes()
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            del buf  # the kernel copied the program
        except OSError as exc:
            log.warning("UDP 4789 probes cannot be answered here", error=str(exc))
            return
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._loop, name="netctl-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        self.client.close()

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data = self._sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            ihl = (data[0] & 0x0F) * 4 if data else 0
            found = parse(data[ihl + 8:])  # past the IP and UDP headers
            if found is None:
                continue
            nonce, sender = found
            with contextlib.suppress(EtcdError):
                self.client.put(keys.probe(nonce, self.host), sender)


@dataclass(frozen=True)
class ProbeResult:
    peer: str
    ok: bool
    ms: float | None = None


def probe(client: Etcd, me: str, peers: Sequence[str], timeout: float = 2.0) -> list[ProbeResult]:
    """Send probes from this host to each peer's UDP 4789; which ones arrived."""
    if not peers:
        return []
    nonce = secrets.token_hex(6)
    prefix = f"{keys.PROBES}{nonce}/"
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while time.monotonic() < deadline and len(answered) < len(peers):
            now = time.monotonic()
            if now >= next_send:  # a few datagrams: one may be lost on a healthy path
                for peer in peers:
                    if peer not in answered:
                        with contextlib.suppress(OSError):
                            sock.sendto(packet(nonce, me), (peer, VXLAN_PORT))
                        sent.setdefault(peer, now)
                next_send = now + 0.2
            for kv in client.get_prefix(prefix).kvs:
                peer = kv.key[len(prefix):]
                if peer in sent and peer not in answered:
                    answered[peer] = (time.monotonic() - sent[peer]) * 1000
            time.sleep(0.02)
    with contextlib.suppress(EtcdError):
        client.delete(prefix, prefix=True)
    return [ProbeResult(p, p in answered, round(answered[p], 1) if p in answered else None)
            for p in peers]
