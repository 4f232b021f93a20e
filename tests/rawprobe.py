"""Hand-crafted frames, as an attacker with CAP_NET_RAW would send them (tests only).

    rawprobe.py send DEV DST_MAC DST_IP PORT tcp|udp   one Ethernet frame out of DEV to DST_MAC
                                                       carrying a TCP SYN or a UDP datagram to
                                                       DST_IP:PORT; prints "answered" if any
                                                       frame comes back from DST_IP within 1 s,
                                                       else "silent"
    rawprobe.py listen ADDR PORT...                    TCP and UDP sockets bound to ADDR:PORT;
                                                       prints "tcp PEER" / "udp PEER" per packet

An AF_PACKET socket skips the sender's own routing, so the frame arrives at the neighbour
(the bridge's gateway) exactly as written: that is how a container reaches addresses its
own kernel would never route, such as 127.0.0.1 or ::1 behind its gateway.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import selectors
import socket
import struct
import sys
import time

from netprobe import answer_forever  # the same directory: run as a script

ETH_P_ALL = 0x0003
SIOCGIFHWADDR = 0x8927
SRC_PORT = 44444


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _l4(proto: str, src: bytes, dst: bytes, port: int, v6: bool) -> bytes:
    number = 6 if proto == "tcp" else 17
    if proto == "tcp":  # SYN, window 64240, no options
        header = struct.pack("!HHIIBBHHH", SRC_PORT, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    else:
        payload = b"ping"
        header = struct.pack("!HHHH", SRC_PORT, port, 8 + len(payload), 0) + payload
    if v6:
        pseudo = src + dst + struct.pack("!IxxxB", len(header), number)
    else:
        pseudo = src + dst + struct.pack("!xBH", number, len(header))
    csum = _checksum(pseudo + header)
    at = 16 if proto == "tcp" else 6
    return header[:at] + struct.pack("!H", csum) + header[at + 2:]


def frame(dev: str, dst_mac: str, src_ip: str, dst_ip: str, port: int, proto: str) -> bytes:
    src, dst = ipaddress.ip_address(src_ip), ipaddress.ip_address(dst_ip)
    v6 = dst.version == 6
    l4 = _l4(proto, src.packed, dst.packed, port, v6)
    number = 6 if proto == "tcp" else 17
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(l4), number, 64) + src.packed + dst.packed
        ethertype = 0x86DD
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4), 1, 0, 64, number, 0) + src.packed + dst.packed
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        ethertype = 0x0800
    mac = bytes.fromhex(dst_mac.replace(":", ""))
    return mac + _own_mac(dev) + struct.pack("!H", ethertype) + ip + l4


def _own_mac(dev: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        info = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", dev.encode()[:15]))
    return info[18:24]


def _own_ip(dev: str, v6: bool) -> str:
    """The device's first address of the family (any source will do for v6)."""
    out = os.popen(f"ip -o -{'6' if v6 else '4'} addr show dev {dev}").read().split()
    for i, word in enumerate(out):
        if word in ("inet", "inet6"):
            return out[i + 1].split("/")[0]
    return "fd00:dead::5" if v6 else "192.0.2.5"


def send(dev: str, dst_mac: str, dst_ip: str, port: int, proto: str) -> str:
    v6 = ":" in dst_ip
    data = frame(dev, dst_mac, _own_ip(dev, v6), dst_ip, port, proto)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
        s.bind((dev, 0))
        s.send(data)
        s.settimeout(0.2)
        want = ipaddress.ip_address(dst_ip).packed
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                got, meta = s.recvfrom(65535)
            except TimeoutError:
                continue
            if meta[2] == socket.PACKET_OUTGOING:
                continue
            # An answer comes from the address we wrote to (IPv4 src at 26, IPv6 at 22).
            if (not v6 and got[12:14] == b"\x08\x00" and got[26:30] == want) or (
                v6 and got[12:14] == b"\x86\xdd" and got[22:38] == want
            ):
                return "answered"
    return "silent"


def listen(pairs: list[tuple[str, int]]) -> None:
    sel = selectors.DefaultSelector()
    for addr, port in pairs:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        for kind, label in ((socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")):
            s = socket.socket(family, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            if label == "tcp":
                s.listen(16)
            sel.register(s, selectors.EVENT_READ, label)
    answer_forever(sel, reply=False, report=True)


def main(argv: list[str]) -> None:
    if argv[0] == "send":
        print(send(argv[1], argv[2], argv[3], int(argv[4]), argv[5]))
    else:
        listen([(argv[i], int(argv[i + 1])) for i in range(1, len(argv), 2)])


if __name__ == "__main__":
    main(sys.argv[1:])
