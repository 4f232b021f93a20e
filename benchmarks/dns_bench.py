#!/usr/bin/env python3
"""The embedded DNS server against aardvark-dns (Podman's), same names, same machine.

    .venv/bin/python benchmarks/dns_bench.py                  # 3 runs of 5 s per measurement
    .venv/bin/python benchmarks/dns_bench.py --runs 5 --seconds 5 --markdown --json /tmp/dns.json

Everything runs inside one `netctl sandbox` (a throwaway network and mount namespace):

- `netctl apply` creates a user-defined bridge `bench` (10.89.0.0/24) with a `client` and ten
  containers svc0..svc9 (svc0-2 share the alias `pool`); netctl's server answers on
  127.0.0.11 inside `client`.
- aardvark-dns 1.x (the Debian package) serves the same names from a config directory written
  here, on the bridge's gateway 10.89.0.1:53, as netavark would set it up.
- An upstream for forwarded names (benchmarks/dns_upstream.py, answers cached) listens on a
  veth in the sandbox; the sandbox's /etc/resolv.conf (a bind mount in its own mount
  namespace) points both servers at it.
- The load generator is dnsperf (Debian package `dnsperf`), run inside `client` with
  `netctl exec`: throughput with 100 queries outstanding, then latency percentiles at a
  fixed rate (`-Q`, per-query times from `-v`). Servers alternate within each run; the table
  shows the median over runs. Every load is bounded in time; no packet leaves the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
NETCTL = [PYTHON, "-m", "controller.cli"]
AARDVARK = "/usr/lib/podman/aardvark-dns"
WORK = Path("/run/netctl/dnsbench")
UPSTREAM = "198.18.0.53"
GATEWAY = "10.89.0.1"
SERVICES = 10
SERVERS = {"netctl": "127.0.0.11", "aardvark-dns": GATEWAY}


def topology() -> str:
    docs = [
        "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: bench}\n"
        "spec: {ipam: {config: [{subnet: 10.89.0.0/24}]}}\n",
        "apiVersion: netctl/v1\nkind: Container\nmetadata: {name: client}\n"
        "spec: {networks: [{name: bench, ipv4Address: 10.89.0.10}]}\n",
    ]
    for i in range(SERVICES):
        aliases = "[pool]" if i < 3 else "[]"
        docs.append(
            f"apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: svc{i}}}\n"
            f"spec: {{networks: [{{name: bench, ipv4Address: 10.89.0.{20 + i}, aliases: {aliases}}}]}}\n"
        )
    return "---\n".join(docs)


def aardvark_config() -> str:
    """netavark's format: the listen address, then `ID IPV4S IPV6S NAMES` per container."""
    lines = [f"{GATEWAY}\n", f"{'c' * 64} 10.89.0.10  client\n"]
    for i in range(SERVICES):
        names = f"svc{i},pool" if i < 3 else f"svc{i}"
        lines.append(f"{i:064x} 10.89.0.{20 + i}  {names}\n")
    return "".join(lines)


def sh(cmd: list[str] | str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def setup(seconds_total: float) -> list[subprocess.Popen[bytes]]:
    if sorted(os.listdir("/sys/class/net")) != ["lo"] or os.environ.get("NETCTL_SANDBOX") != "1":
        sys.exit("refusing to run outside a fresh sandbox")
    WORK.mkdir(parents=True, exist_ok=True)
    sh(f"ip link add up0 type veth peer name up0p && ip link set up0p up && "
       f"ip addr add {UPSTREAM}/24 dev up0 && ip link set up0 up")
    (WORK / "resolv.conf").write_text(f"nameserver {UPSTREAM}\n")
    sh(["mount", "--bind", str(WORK / "resolv.conf"), "/etc/resolv.conf"])
    procs = [subprocess.Popen(
        [PYTHON, str(HERE / "dns_upstream.py"), "--listen", UPSTREAM, "--seconds", str(seconds_total)],
        stdout=subprocess.PIPE, cwd=ROOT,
    )]
    assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == b"ready"
    (WORK / "topology.yaml").write_text(topology())
    sh([*NETCTL, "apply", "-f", str(WORK / "topology.yaml")])
    conf = WORK / "aardvark"
    conf.mkdir(exist_ok=True)
    (conf / "bench").write_text(aardvark_config())
    procs.append(subprocess.Popen([AARDVARK, "--config", str(conf), "-p", "53", "run"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    (WORK / "local.txt").write_text("".join(f"svc{i} A\n" for i in range(SERVICES)) + "pool A\n")
    (WORK / "forwarded.txt").write_text("".join(f"f{i}.example.test A\n" for i in range(200)))
    for server in SERVERS.values():  # both answer, and the upstream's cache is warm
        for _ in range(50):
            if "10.89.0.20" in sh([*NETCTL, "exec", "client", "--", "dig", "+short", "+tries=1",
                                   "+time=1", f"@{server}", "svc0"], check=False):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{server} does not answer")
        perf(server, "forwarded.txt", ["-n", "1"])
    return procs


def udp_drops() -> int:
    """Datagrams the kernel dropped for a full receive buffer, in the client's namespace
    (dnsperf's socket and netctl's 127.0.0.11) and the sandbox host's (aardvark-dns)."""
    total = 0
    for cmd in (["ip", "netns", "exec", "client", "cat", "/proc/net/snmp"], ["cat", "/proc/net/snmp"]):
        rows = [line.split() for line in sh(cmd).splitlines() if line.startswith("Udp:")]
        total += int(rows[1][rows[0].index("RcvbufErrors")])
    return total


def stop_sandbox_processes(comm: str) -> None:
    """Kill the processes named `comm` in this sandbox's network namespace (and only there)."""
    mine = os.stat("/proc/self/ns/net").st_ino
    for entry in os.listdir("/proc"):
        try:
            if (entry.isdigit() and os.stat(f"/proc/{entry}/ns/net").st_ino == mine
                    and Path(f"/proc/{entry}/comm").read_text().strip() == comm):
                os.kill(int(entry), 9)
        except OSError:
            continue


def perf(server: str, queries: str, extra: list[str]) -> str:
    return sh([*NETCTL, "exec", "client", "--", "dnsperf", "-s", server, "-d", str(WORK / queries),
               "-t", "2", *extra], timeout=300)


def throughput(server: str, queries: str, seconds: float) -> dict[str, float]:
    out = perf(server, queries, ["-l", str(seconds), "-c", "4", "-q", "100"])
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    return {"qps": qps, "lost": lost}


def latency(server: str, queries: str, seconds: float, rate: int) -> dict[str, float]:
    out = perf(server, queries, ["-l", str(seconds), "-Q", str(rate), "-v"])
    times = sorted(float(m) for m in re.findall(r"^> \w+ \S+ \S+ ([\d.]+)$", out, re.M))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    if not times:
        raise RuntimeError(f"no latencies in dnsperf output:\n{out[-2000:]}")
    return {
        "p50_ms": 1000 * times[len(times) // 2],
        "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_ms": 1000 * times[-1],
        "lost": lost,
    }


def measure(runs: int, seconds: float, rate: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {name: {} for name in SERVERS}

    def add(name: str, prefix: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            results[name].setdefault(f"{prefix} {key}".strip(), []).append(value)

    for run in range(runs):
        for name, server in (SERVERS.items() if run % 2 == 0 else reversed(SERVERS.items())):
            drops = udp_drops()
            add(name, "local", throughput(server, "local.txt", seconds))
            add(name, "forwarded", throughput(server, "forwarded.txt", seconds))
            add(name, f"local@{rate}qps", latency(server, "local.txt", seconds, rate))
            add(name, f"forwarded@{rate}qps", latency(server, "forwarded.txt", seconds, rate))
            add(name, "udp buffer drops", {"": udp_drops() - drops})
        print(f"run {run + 1}/{runs} done", file=sys.stderr, flush=True)
    return results


def table(results: dict[str, dict[str, list[float]]], markdown: bool) -> str:
    names = list(results)
    metrics = list(results[names[0]])
    rows = [["metric (median)", *names]]
    for m in metrics:
        rows.append([m, *(f"{statistics.median(results[n][m]):,.2f}" if "ms" in m
                          else f"{statistics.median(results[n][m]):,.0f}" for n in names)])
    if markdown:
        out = [f"| {' | '.join(rows[0])} |", "| " + " | ".join("---" for _ in rows[0]) + " |"]
        out += [f"| {' | '.join(r)} |" for r in rows[1:]]
        return "\n".join(out) + "\n"
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)) + "\n" for r in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rate", type=int, default=1000, help="queries per second for the latency runs")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    for tool in ("dnsperf", "dig"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install dnsperf dnsutils")
    if not os.path.exists(AARDVARK):
        sys.exit(f"{AARDVARK} is missing: apt-get install aardvark-dns")
    if not args.inside:
        argv = sys.argv[1:]
        return subprocess.call([*NETCTL, "--state-dir", "/var/lib/netctl", "sandbox", "--",
                                PYTHON, str(Path(__file__).resolve()), "--inside", *argv], cwd=ROOT)
    budget = args.runs * 4 * len(SERVERS) * (args.seconds + 3) + 120
    procs = setup(budget)
    try:
        results = measure(args.runs, args.seconds, args.rate)
    finally:
        for proc in procs:
            proc.kill()
        stop_sandbox_processes("aardvark-dns")  # it daemonizes: its pid is not the one we started
    status = json.loads(sh([*NETCTL, "-o", "json", "dns", "status"]))
    print(f"netctl dns: {status['queries']}", file=sys.stderr)
    sys.stdout.write(table(results, args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
