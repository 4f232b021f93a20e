#!/usr/bin/env python3
"""Overlay benchmark: propagation latency across hosts and TCP throughput over VXLAN.

    sudo .venv/bin/python benchmarks/overlay_bench.py                  # 20 endpoints, 5 x 3 s streams
    sudo .venv/bin/python benchmarks/overlay_bench.py --endpoints 50 --json /tmp/overlay.json

Runs on a lab (controller/cluster/lab.py, what `netctl sandbox --hosts 3` builds): three sandbox
hosts on an underlay bridge, etcd in a fourth, an overlay agent on each. Nothing touches the
machine's own network namespace.

Propagation: endpoints are created one at a time on host2 (`netctl apply` of one container
on the overlay). For each, three clocks (one machine, so one time base):
  published   etcd's watch delivers the endpoint's key (observed from the etcd sandbox)
  programmed  the neighbour entry appears on host1's and host3's VXLAN device (netlink events)
  reachable   a container on host1 gets its first ICMP echo reply (it pings every 5 ms)
Reported: programmed - published (the control plane's own latency) and reachable - published
(what a user sees), median and p99 over all endpoints and both remote hosts.

Throughput: one TCP stream, the same Python sender and receiver, `--seconds` long, between a
container on host1 and one on host2 across the overlay, and between host1 and host2 directly
on the underlay, back to back, `--streams` pairs in the same run; the ratio is the median of the
pairs' ratios (each pair shares the machine's load of the moment).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from controller.cluster.lab import ETCD_ADDRESS, ETCD_PORT, NETCTL, Lab, LabHost  # noqa: E402
from tests.multihost import apply, container, ip_of, network, overlay_ns  # noqa: E402

PY = sys.executable

WATCH_ETCD = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from controller.cluster.etcd import Etcd
c = Etcd(["http://{ETCD_ADDRESS}:{ETCD_PORT}"])
w = c.watch("/netctl/endpoints/", c.get_prefix("/netctl/endpoints/").revision + 1)
print("ready", flush=True)
for batch in w:
    t = time.time()
    for e in batch.events:
        if e.type == "PUT":
            print(t, e.kv.json()["ip"], flush=True)
"""

WATCH_NEIGH = """
import time
from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_NEIGH
ipr = IPRoute()
ipr.bind(groups=RTMGRP_NEIGH)
print("ready", flush=True)
while True:
    for msg in ipr.get():
        if msg.get("event") == "RTM_NEWNEIGH" and msg["state"] & 0x80:
            print(time.time(), msg.get("NDA_DST"), flush=True)
"""

PROBE = """
import os, socket, struct, sys, time
target = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
def packet(seq):
    body = struct.pack("!BBHHH", 8, 0, 0, 4242, seq) + b"netctl"
    words = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    words = (words >> 16) + (words & 0xFFFF)
    return body[:2] + struct.pack("!H", ~(words + (words >> 16)) & 0xFFFF) + body[4:]
print("ready", flush=True)
deadline = time.time() + 20
seq = 0
while time.time() < deadline:
    seq += 1
    try:
        s.sendto(packet(seq), (target, 0))
    except OSError:
        pass
    end = time.time() + 0.005
    while time.time() < end:
        try:
            data, addr = s.recvfrom(2048)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        if addr[0] == target and data[20] == 0:
            print(time.time(), flush=True)
            sys.exit(0)
sys.exit(1)
"""

SINK = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
buf = bytearray(1 << 20); total = 0; start = None
while True:
    n = c.recv_into(buf)
    if not n: break
    if start is None: start = time.monotonic()
    total += n
print(total, time.monotonic() - (start or time.monotonic()), flush=True)
"""

SOURCE = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
chunk = memoryview(bytes(1 << 20)); end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    c.sendall(chunk)
c.close()
"""


def started(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"helper did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc


def helper(host: LabHost, argv: list[str]) -> subprocess.Popen[str]:
    return started(host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))


def lines(proc: subprocess.Popen[str]) -> list[str]:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out.splitlines()


def propagation(lab: Lab, count: int) -> dict[str, Any]:
    h1, h2, h3 = lab.hosts
    apply(lab, h1, network("bench"), container("probe1", ["bench"]))
    apply(lab, h3, container("probe3", ["bench"]))
    # The probing container resolves ARP quickly: the measure is netctl's, not ARP's timers.
    h1.exec("probe1", "sysctl -qw net.ipv4.neigh.eth0.retrans_time_ms=5")
    etcd_watch = helper(lab.etcd_host, [PY, "-c", WATCH_ETCD])  # type: ignore[arg-type]
    neigh = {h.name: helper(h, [*overlay_ns(h, "bench").split(), PY, "-c", WATCH_NEIGH]) for h in (h1, h3)}
    reachable: dict[str, float] = {}
    applied: list[float] = []
    taken = {ip_of(h1, "probe1"), ip_of(h3, "probe3")}
    for i in range(count):
        expected = next(f"10.0.0.{n}" for n in range(2, 250) if f"10.0.0.{n}" not in taken)
        probe = helper(h1, [*NETCTL, "exec", "probe1", "--", "python3", "-c", PROBE, expected])
        t0 = time.time()
        apply(lab, h2, container(f"ep{i}", ["bench"]))
        applied.append(time.time() - t0)
        out, _ = probe.communicate(timeout=30)
        actual = ip_of(h2, f"ep{i}")
        taken.add(actual)
        if probe.returncode == 0 and actual == expected:
            reachable[actual] = float(out.split()[0])
    published = {ip: float(t) for t, ip in (ln.split() for ln in lines(etcd_watch) if len(ln.split()) == 2)}
    programmed: dict[str, dict[str, float]] = {}
    for name, proc in neigh.items():
        for ln in lines(proc):
            t, ip = ln.split()
            programmed.setdefault(name, {}).setdefault(ip, float(t))
    prog_ms = [(programmed[h][ip] - published[ip]) * 1000 for h in programmed for ip in published
               if ip in programmed[h]]
    reach_ms = [(reachable[ip] - published[ip]) * 1000 for ip in reachable if ip in published]
    return {
        "endpoints": count,
        "programmed_ms": {"median": statistics.median(prog_ms), "p99": percentile(prog_ms, 99),
                          "samples": len(prog_ms)},
        "reachable_ms": {"median": statistics.median(reach_ms), "p99": percentile(reach_ms, 99),
                         "samples": len(reach_ms)},
        "apply_s": {"median": statistics.median(applied), "max": max(applied)},
    }


def stream(sender: LabHost, receiver: LabHost, target: str, seconds: float,
           sender_ctr: str | None, receiver_ctr: str | None, port: int) -> float:
    """Gbit/s of one TCP stream."""
    def argv(ctr: str | None, code: str, *args: str) -> list[str]:
        inner = ["python3", "-c", code, *args]
        return [*NETCTL, "exec", ctr, "--", *inner] if ctr else [PY, "-c", code, *args]

    sink = helper(receiver, argv(receiver_ctr, SINK, str(port)))
    source = sender.popen(argv(sender_ctr, SOURCE, target, str(port), str(seconds)),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    source.communicate(timeout=seconds + 30)
    out, _ = sink.communicate(timeout=30)
    total, elapsed = out.split()
    return int(total) * 8 / float(elapsed) / 1e9


def throughput(lab: Lab, seconds: float, runs: int) -> dict[str, Any]:
    h1, h2, _ = lab.hosts
    apply(lab, h1, container("tx", ["bench"]))
    apply(lab, h2, container("rx", ["bench"]))
    rx = ip_of(h2, "rx")
    for _ in range(100):  # the agents program the entries
        if h1.exec("tx", f"ping -c1 -W1 {rx}", check=False).returncode == 0:
            break
    overlay: list[float] = []
    underlay: list[float] = []
    for i in range(runs):  # back to back, first one then the other: pairs share the conditions
        pair = [("underlay", h2.address, None, None), ("overlay", rx, "tx", "rx")]
        for kind, target, src, dst in pair if i % 2 == 0 else reversed(pair):
            gbps = stream(h1, h2, target, seconds, src, dst, 5201 + 2 * i + (kind == "overlay"))
            (overlay if kind == "overlay" else underlay).append(gbps)
    o, u = statistics.median(overlay), statistics.median(underlay)
    pairs = [a / b for a, b in zip(overlay, underlay, strict=True)]
    return {"seconds": seconds, "runs": runs, "overlay_gbps": overlay, "underlay_gbps": underlay,
            "overlay_median_gbps": o, "underlay_median_gbps": u, "ratio_of_medians": o / u,
            "pair_ratios": pairs, "ratio": statistics.median(pairs)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (sandbox namespaces)", file=sys.stderr)
        return 2
    with Lab(3, ttl=5) as lab:
        for h in lab.hosts:
            lab.start_agent(h)
        time.sleep(0.5)
        result = {"propagation": propagation(lab, args.endpoints),
                  "throughput": throughput(lab, args.seconds, args.streams),
                  "kernel": os.uname().release, "cpus": os.cpu_count()}
    p, t = result["propagation"], result["throughput"]
    print(f"propagation over {p['endpoints']} endpoints (host2 -> host1, host3):")
    for what in ("programmed", "reachable"):
        m = p[f"{what}_ms"]
        print(f"  {what:<11} median {m['median']:.1f} ms   p99 {m['p99']:.1f} ms   ({m['samples']} samples)")
    print(f"  netctl apply on host2: median {p['apply_s']['median']:.2f} s")
    print(f"throughput, one TCP stream, {t['seconds']:g} s x {t['runs']}:")
    print(f"  underlay {t['underlay_median_gbps']:.2f} Gbit/s   overlay {t['overlay_median_gbps']:.2f} Gbit/s"
          f"   ratio {t['ratio']:.2f} (pairs' median; medians' {t['ratio_of_medians']:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = p["reachable_ms"]["median"] < 500 and t["ratio"] >= 0.8
    print("targets (propagation < 500 ms median, overlay >= 80% of underlay):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
