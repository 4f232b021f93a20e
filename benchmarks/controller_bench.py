#!/usr/bin/env python3
"""Benchmark `netctl controller`: drift repair latency, one-object reconcile, full resync, memory.

    .venv/bin/python benchmarks/controller_bench.py                    # 1,000 containers, 10 networks
    .venv/bin/python benchmarks/controller_bench.py --containers 200 --samples 20 --json /tmp/c.json

Everything runs in a throwaway `netctl sandbox` (this script re-executes itself inside one):
nothing touches the machine's own network. Inside, the topology is N containers spread over
10 bridge networks, one manifest file per network, in a watched folder; the controller runs
as its own process (`--log-format json`, resync every hour so that it does not interfere).

Measured (medians and p99 over the samples):

  initial     folder dropped in -> first reconcile done (all namespaces, veths, files)
  one-change  one container added to / removed from a file -> the controller's reconcile
              (its own `seconds`) and end to end (write -> reconcile logged, debounce included)
  drift       netlink-visible drift (a veth set down, a bridge set down, a container's address
              removed) -> the kernel shows it repaired (polled every 2 ms with pyroute2)
  resync      SIGHUP -> the full resync's `seconds`
  memory      the controller's resident set (VmRSS) and its peak (VmHWM) at the end
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
NETWORKS = 10
WORK = "/run/netctl/controller-bench"  # a private tmpfs inside the sandbox
TARGETS = {"drift_median": 1.0, "one_change": 1.0, "resync": 10.0, "rss_mb": 150.0}


def container(name: str, net: str) -> str:
    return (f"apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
            f"spec: {{networks: [{net}]}}\n")


def network_file(j: int, names: list[str]) -> str:
    net = f"net{j}"
    head = (f"apiVersion: netctl/v1\nkind: Network\nmetadata: {{name: {net}}}\n"
            f"spec: {{ipam: {{config: [{{subnet: 10.{100 + j}.0.0/16}}]}}}}\n")
    return "---\n".join([head, *(container(n, net) for n in names)])


def layout(n: int) -> dict[int, list[str]]:
    return {j: [f"c{i:04d}" for i in range(n) if i % NETWORKS == j] for j in range(NETWORKS)}


class Controller:
    def __init__(self, folder: Path, log: Path) -> None:
        self.log = log
        self._offset = 0
        self._events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "controller.cli", "--log-format", "json", "--log-level", "info", "controller",
             "--manifests", str(folder), "--resync-interval", "3600"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "w"),  # noqa: SIM115
        )

    def events(self) -> list[dict[str, Any]]:
        with open(self.log) as f:
            f.seek(self._offset)
            data = f.read()
        complete, _, _ = data.rpartition("\n")
        self._offset += len(complete) + (1 if complete else 0)
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") != "action":
                self._events.append(event)
        return self._events

    def wait(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = len(self._events)
        while time.monotonic() < deadline:
            for event in self.events()[seen:]:
                if predicate(event):
                    return event
            seen = len(self._events)
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited {self.proc.returncode}; see {self.log}")
            time.sleep(0.005)
        raise TimeoutError(f"no matching event within {timeout}s; see {self.log}")

    def idle(self, quiet: float = 0.4, timeout: float = 120) -> None:
        """Until no reconcile was logged for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        count = len(self.events())
        last = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = len(self.events())
            if now != count:
                count, last = now, time.monotonic()
            elif time.monotonic() - last >= quiet:
                return
        raise TimeoutError("the controller never went idle")

    def memory(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p99": percentile(values, 99), "n": len(values),
            "min": min(values), "max": max(values)}


def iso_to_epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def inside(args: argparse.Namespace) -> dict[str, Any]:
    from pyroute2 import IPRoute

    os.makedirs(WORK, exist_ok=True)
    folder = Path(WORK) / "manifests"
    folder.mkdir(exist_ok=True)
    ctl = Controller(folder, Path(WORK) / "controller.log")
    ctl.wait(lambda e: e.get("event") == "reconciled", 30)
    result: dict[str, Any] = {"containers": args.containers, "networks": NETWORKS}
    groups = layout(args.containers)

    start = time.time()
    for j, names in groups.items():
        (folder / f"net{j}.yaml").write_text(network_file(j, names))
    first = ctl.wait(lambda e: e.get("event") == "reconciled" and e.get("actions", 0) > 0, 1800)
    result["initial_seconds"] = round(iso_to_epoch(first["timestamp"]) - start, 3)
    result["initial_actions"] = first["actions"]
    ctl.idle(quiet=2.0, timeout=600)

    # One object changes: a container is added to one file, then removed again (pairs of samples).
    reconcile, end_to_end = [], []
    rng = random.Random(7)
    j = 0
    for k in range(args.samples):
        if k % 2 == 0:
            j = rng.randrange(NETWORKS)
        names = groups[j] + ([f"extra{k}"] if k % 2 == 0 else [])
        tmp, path = folder / f".net{j}.yaml.tmp", folder / f"net{j}.yaml"
        tmp.write_text(network_file(j, names))
        wrote = time.time()
        os.replace(tmp, path)  # as an editor or git writes: complete at once
        event = ctl.wait(lambda e: e.get("event") == "reconciled" and "files" in e.get("reasons", ()), 60)
        reconcile.append(event["seconds"])
        end_to_end.append(iso_to_epoch(event["timestamp"]) - wrote)
        ctl.idle(quiet=0.4)
    result["one_change_reconcile"] = summary(reconcile)
    result["one_change_end_to_end"] = summary(end_to_end)

    # Netlink-visible drift, repaired: measured from the kernel's side.
    latencies: dict[str, list[float]] = {"veth down": [], "bridge down": [], "address removed": []}
    with IPRoute() as ipr:
        links = {m.get("IFLA_IFNAME"): m["index"] for m in ipr.get_links()}
        veths = [n for n in links if n and n.startswith("veth")]
        bridges = [n for n in links if n and n.startswith("br-")]
        for k in range(args.samples):
            kind = list(latencies)[k % 3]
            if kind == "address removed":
                latencies[kind].append(_address_drift(rng.choice(groups[rng.randrange(NETWORKS)])))
            else:
                name = rng.choice(veths if kind == "veth down" else bridges)
                index = links[name]
                t0 = time.perf_counter()
                ipr.link("set", index=index, state="down")
                while not ipr.get_links(index)[0]["flags"] & 1:
                    time.sleep(0.002)
                    if time.perf_counter() - t0 > 30:
                        raise TimeoutError(f"{name} never came back up")
                latencies[kind].append(time.perf_counter() - t0)
            ctl.idle(quiet=0.4)
    result["drift_repair"] = summary([v for vs in latencies.values() for v in vs])
    result["drift_repair_by_kind"] = {k: round(statistics.median(v), 4) for k, v in latencies.items() if v}

    # Full resync (SIGHUP).
    resync = []
    for _ in range(args.resyncs):
        ctl.proc.send_signal(signal.SIGHUP)
        event = ctl.wait(lambda e: e.get("event") == "reconciled" and "signal" in e.get("reasons", ()), 300)
        resync.append(event["seconds"])
        ctl.idle(quiet=0.4)
    result["resync"] = summary(resync)
    rss, peak = ctl.memory()
    result["rss_mb"], result["peak_rss_mb"] = round(rss, 1), round(peak, 1)
    result["drift_repairs_logged"] = sum(1 for e in ctl.events() if e.get("event") == "drift repaired")
    ctl.stop()
    reap()
    return result


def reap() -> None:
    """End what the run left in this sandbox (the embedded DNS server outlives the controller):
    every process in our network namespace but us. Only this sandbox's processes live there."""
    mine = os.stat("/proc/self/ns/net").st_ino
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == mine:
                os.kill(int(entry), signal.SIGKILL)
        except OSError:
            continue


def _address_drift(name: str) -> float:
    """Remove a container's address (inside its namespace) and wait until it is back."""
    from pyroute2 import IPRoute

    from controller.kernel.netns import entered

    with entered(name):
        ipr = IPRoute()
    try:
        index = ipr.link_lookup(ifname="eth0")[0]
        addr = next(a for a in ipr.get_addr(index=index) if a["family"] == 2)
        ip, prefix = addr.get("IFA_ADDRESS"), addr["prefixlen"]
        t0 = time.perf_counter()
        ipr.addr("del", index=index, address=ip, prefixlen=prefix)
        while not [a for a in ipr.get_addr(index=index) if a["family"] == 2]:
            time.sleep(0.002)
            if time.perf_counter() - t0 > 30:
                raise TimeoutError(f"{name}'s address never came back")
        return time.perf_counter() - t0
    finally:
        ipr.close()


def report(r: dict[str, Any]) -> str:
    def ms(v: float) -> str:
        return f"{v * 1000:.0f} ms"

    lines = [
        f"netctl controller, {r['containers']} containers on {r['networks']} networks "
        f"(one file per network)",
        "",
        "| measurement | median | p99 | samples | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| drift repaired (netlink-visible) | {ms(r['drift_repair']['median'])} | "
        f"{ms(r['drift_repair']['p99'])} | {r['drift_repair']['n']} | < 1 s median |",
        f"| one-object change: reconcile | {ms(r['one_change_reconcile']['median'])} | "
        f"{ms(r['one_change_reconcile']['p99'])} | {r['one_change_reconcile']['n']} | < 1 s |",
        f"| one-object change: file write to reconciled | {ms(r['one_change_end_to_end']['median'])} | "
        f"{ms(r['one_change_end_to_end']['p99'])} | {r['one_change_end_to_end']['n']} | |",
        f"| full resync (SIGHUP) | {r['resync']['median']:.2f} s | {r['resync']['p99']:.2f} s | "
        f"{r['resync']['n']} | < 10 s |",
        f"| controller memory (RSS, peak) | {r['rss_mb']:.0f} MB, {r['peak_rss_mb']:.0f} MB | | | < 150 MB |",
        f"| initial convergence ({r['initial_actions']} actions) | {r['initial_seconds']:.1f} s | | 1 | |",
        "",
        "drift repair by kind (median): "
        + ", ".join(f"{k} {ms(v)}" for k, v in r["drift_repair_by_kind"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--containers", type=int, default=1000)
    p.add_argument("--samples", type=int, default=30, help="one-change and drift samples (default 30)")
    p.add_argument("--resyncs", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inside:
        if os.environ.get("NETCTL_SANDBOX") != "1":
            sys.exit("refusing to run outside a sandbox")
        result = inside(args)
        print(json.dumps(result))
        return 0
    out = subprocess.run(
        [PYTHON, "-m", "controller.cli", "--state-dir", "/run/netctl/state", "sandbox", "--",
         PYTHON, str(Path(__file__).resolve()), "--inside", "--containers", str(args.containers),
         "--samples", str(args.samples), "--resyncs", str(args.resyncs)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        return out.returncode
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
