#!/usr/bin/env python3
"""Benchmark netctl against its peers: N containers on one bridge network.

    .venv/bin/python benchmarks/run.py                       # N = 10, 100, 500; 3 runs each
    .venv/bin/python benchmarks/run.py --sizes 10,100 --runs 5 --tools netctl,floor
    .venv/bin/python benchmarks/run.py --markdown --json /tmp/bench.json

Tools (each does the same job; see benchmarks/README.md):

  netctl  `netctl apply -f topology.yaml` (fresh), the same apply again (no-op), `netctl delete -f`
  shell   benchmarks/peer_shell.sh: one `ip` command per step, `ip netns exec` inside namespaces
  floor   benchmarks/peer_floor.py: straight-line pyroute2, only the kernel work (the lower bound)

Every measurement runs in its own throwaway sandbox: this script re-executes itself under
`netctl sandbox` (see benchmarks/harness.py: own network, mount, UTS and PID namespaces, tmpfs
on /run/netns, /etc/netns and /run/netctl, where netctl's state dir lives, a fresh /sys).
Nothing is created in the machine's own network namespace; everything vanishes when the
sandbox's last process exits. Each step is timed from the outside (wall clock around
the subprocess, so interpreter start-up and imports count for every tool alike).

The `tasks` column counts the processes and threads created during setup (PIDs allocated in the
sandbox's private PID namespace), including the tool's own process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    HERE,
    NETCTL,
    PYTHON,
    STATE_DIR,
    fmt_s,
    fmt_x,
    machine,
    markdown,
    median,
    plain,
    ratio,
    report,
    require_sandbox,
    sandboxed,
    source_digest,
    targets_text,
    timed,
)

TOOLS = ("floor", "netctl", "shell")
BRIDGE = {"netctl": "netctl0", "shell": "br0", "floor": "br0"}
WORK_DIR = "/run/netctl/bench"

# ------------------------------------------------------------------------------------------- inside


def census(bridge: str) -> dict[str, int]:
    """What exists now: namespaces, per-container file folders, links enslaved to the bridge."""
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                         capture_output=True, text=True).stdout
    return {
        "netns": len(os.listdir("/run/netns")),
        "etc": len(os.listdir("/etc/netns")),
        "ports": len([line for line in out.splitlines() if line.strip()]),
    }


def wait_census(bridge: str, want: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        got = census(bridge)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def trial(tool: str, n: int) -> dict[str, Any]:
    """One measurement of one tool at one size, in the current (fresh) sandbox."""
    result: dict[str, Any] = {"tool": tool, "n": n}
    if tool == "netctl":
        topo = f"{WORK_DIR}/topology-{n}.yaml"
        subprocess.run([PYTHON, str(HERE / "gen_topology.py"), str(n), "-o", topo], check=True)
        base = [NETCTL, "--state-dir", STATE_DIR]
        result["setup"], result["tasks"], _ = timed([*base, "apply", "-f", topo])
        result["setup_census"] = census(BRIDGE[tool])
        result["noop"], _, out = timed([*base, "apply", "-f", topo])
        result["noop_changes"] = sum(1 for line in out.splitlines() if line[:2] in ("+ ", "~ ", "- "))
        result["teardown"], result["teardown_tasks"], _ = timed([*base, "delete", "-f", topo])
    else:
        if tool == "shell":
            argv = ["bash", str(HERE / "peer_shell.sh")]
        else:
            argv = [PYTHON, str(HERE / "peer_floor.py")]
        result["setup"], result["tasks"], _ = timed([*argv, "setup", str(n)])
        result["setup_census"] = census(BRIDGE[tool])
        result["noop"] = None
        result["teardown"], result["teardown_tasks"], _ = timed([*argv, "teardown", str(n)])
    result["teardown_census"] = wait_census(BRIDGE[tool], {"netns": 0, "etc": 0, "ports": 0})
    ok = result["setup_census"] == {"netns": n, "etc": n, "ports": n} and \
        result["teardown_census"] == {"netns": 0, "etc": 0, "ports": 0} and \
        not result.get("noop_changes")
    result["ok"] = ok
    return result


def inside(args: argparse.Namespace) -> int:
    require_sandbox(args.host_netns, folders=(WORK_DIR,))
    try:
        result = trial(args.tool, args.n)
    except Exception as exc:  # report to the driver, which prints it
        result = {"tool": args.tool, "n": args.n, "error": str(exc)}
    report(result)
    return 0


# ------------------------------------------------------------------------------------------- driver


Summary = dict[tuple[int, str], dict[str, Any]]


def summarize(results: list[dict[str, Any]], sizes: list[int], tools: list[str]) -> Summary:
    summary: Summary = {}
    for n in sizes:
        for tool in tools:
            attempts = [r for r in results if r["n"] == n and r["tool"] == tool]
            rs = [r for r in attempts if "error" not in r]
            if not rs:
                continue
            summary[(n, tool)] = {
                "setup": median([r["setup"] for r in rs]),
                "noop": median([r["noop"] for r in rs]),
                "teardown": median([r["teardown"] for r in rs]),
                "tasks": median([r["tasks"] for r in rs]),
                "runs": len(rs),
                "attempts": len(attempts),
                "ok": all(r["ok"] for r in rs),
                "setup_all": [round(r["setup"], 4) for r in rs],
                "noop_all": [round(r["noop"], 4) for r in rs if r["noop"] is not None],
                "teardown_all": [round(r["teardown"], 4) for r in rs],
            }
    return summary


HEADERS = ["N", "tool", "setup s", "no-op s", "teardown s", "tasks",
           "setup ÷ floor", "teardown ÷ floor", "shell ÷ netctl (setup)", "shell ÷ netctl (teardown)"]


def rows(summary: Summary, sizes: list[int], tools: list[str]) -> list[list[str]]:
    out = []
    for n in sizes:
        floor = summary.get((n, "floor"))
        shell = summary.get((n, "shell"))
        for tool in tools:
            s = summary.get((n, tool))
            if s is None:
                out.append([str(n), tool, "error", "", "", "", "", "", "", ""])
                continue
            vs_floor_setup = ratio(s["setup"], floor["setup"]) if floor and tool != "floor" else None
            vs_floor_down = ratio(s["teardown"], floor["teardown"]) if floor and tool != "floor" else None
            sh_setup = ratio(shell["setup"], s["setup"]) if shell and tool == "netctl" else None
            sh_down = ratio(shell["teardown"], s["teardown"]) if shell and tool == "netctl" else None
            flag = "" if s["ok"] else " (!)"
            if s["runs"] < s["attempts"]:
                flag += f" ({s['runs']}/{s['attempts']} ok)"
            out.append([str(n), tool + flag, fmt_s(s["setup"]), fmt_s(s["noop"]), fmt_s(s["teardown"]),
                        f"{s['tasks']:.0f}", fmt_x(vs_floor_setup), fmt_x(vs_floor_down),
                        fmt_x(sh_setup), fmt_x(sh_down)])
    return out


def targets(summary: Summary, sizes: list[int]) -> list[tuple[str, str, bool | None]]:
    """The issue's targets: (description, measured, passed)."""
    checks: list[tuple[str, str, bool | None]] = []

    def get(n: int, tool: str, key: str) -> float | None:
        s = summary.get((n, tool))
        return s[key] if s else None

    for n in sizes:
        r = ratio(get(n, "netctl", "setup"), get(n, "floor", "setup"))
        if r is not None:
            checks.append((f"N={n}: apply ≤ 2× floor", f"{r:.2f}×", r <= 2.0))
        r = ratio(get(n, "shell", "setup"), get(n, "netctl", "setup"))
        if r is not None:
            checks.append((f"N={n}: apply ≥ 3× faster than shell", f"{r:.2f}×", r >= 3.0))
        r = ratio(get(n, "netctl", "teardown"), get(n, "floor", "teardown"))
        if r is not None:
            checks.append((f"N={n}: delete ≤ 1.5× floor", f"{r:.2f}×", r <= 1.5))
    noop = get(500, "netctl", "noop")
    if noop is not None:
        checks.append(("N=500: no-op re-apply < 1 s", f"{noop:.3f} s", noop < 1.0))
    if 100 in sizes and 500 in sizes:
        for tool in ("netctl", "shell", "floor"):
            for key, label in (("setup", "apply"), ("teardown", "delete"), ("noop", "no-op")):
                r = ratio(get(500, tool, key), get(100, tool, key))
                if r is not None:
                    checks.append((f"{tool} {label}: t(500) ≤ 6× t(100)", f"{r:.2f}×", r <= 6.0))
    return checks


def render(summary: Summary, sizes: list[int], tools: list[str], runs: int, as_markdown: bool) -> None:
    body = rows(summary, sizes, tools)
    checks = targets(summary, sizes)
    title = f"median wall time over {runs} run(s), seconds; each measurement in a fresh sandbox"
    if as_markdown:
        print(f"Machine: {machine()}\n")
        print(f"{title}\n")
        print(markdown(HEADERS, body))
        if checks:
            print("\n" + targets_text(checks, as_markdown=True))
        return
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"{title}\n{plain(HEADERS, body, right=True)}\n{targets_text(checks, as_markdown=False)}")
        return
    console = Console(width=max(shutil.get_terminal_size((150, 40)).columns, 150))
    table = Table(title=title, caption=machine())
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="left" if i == 1 else "right")
    previous = None
    for r in body:
        if previous is not None and r[0] != previous:
            table.add_section()
        previous = r[0]
        table.add_row(*r)
    console.print(table)
    if not checks:
        return
    t = Table(title="targets")
    t.add_column("target")
    t.add_column("measured", justify="right")
    t.add_column("met")
    for d, m, ok in checks:
        t.add_row(d, m, "[green]yes[/]" if ok else "[red]no[/]")
    console.print(t)


def driver(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, mounts); runs everything inside throwaway sandboxes")
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            sys.exit(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    results: list[dict[str, Any]] = []
    digest_before = source_digest()
    for run in range(args.runs):
        for n in sizes:
            # rotate the order per run so that no tool always goes first (or after the biggest teardown)
            order = tools[run % len(tools):] + tools[:run % len(tools)]
            for tool in order:
                result = {"tool": tool, "n": n,
                          **sandboxed(Path(__file__), ["--tool", tool, "--n", str(n)], args.timeout)}
                results.append(result)
                if "error" in result:
                    print(f"run {run + 1} N={n} {tool}: ERROR {result['error']}", file=sys.stderr)
                else:
                    noop = "" if result["noop"] is None else f" noop {result['noop']:.3f}s"
                    print(f"run {run + 1} N={n} {tool}: setup {result['setup']:.3f}s{noop} "
                          f"teardown {result['teardown']:.3f}s tasks {result['tasks']}"
                          f"{'' if result['ok'] else '  (!) state check failed: ' + json.dumps(result)}",
                          file=sys.stderr)
                # let the kernel finish tearing down the sandbox's namespaces before the next one
                time.sleep(args.settle + n * args.settle_per_container)
    if "netctl" in tools and source_digest() != digest_before:
        print(f"warning: controller/ sources changed during the run ({digest_before} -> {source_digest()}): "
              "netctl's samples mix versions", file=sys.stderr)
    summary = summarize(results, sizes, tools)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "results": results,
                       "summary": {f"{n}/{t}": v for (n, t), v in summary.items()}}, f, indent=2)
    render(summary, sizes, tools, args.runs, args.markdown)
    return 0 if all(r.get("ok") for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,500", help="comma-separated N (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per size and tool (default: %(default)s)")
    p.add_argument("--tools", default=",".join(TOOLS), help="default: %(default)s")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds to wait after each sandbox (default: %(default)s) ...")
    p.add_argument("--settle-per-container", type=float, default=0.004,
                   help="... plus this many per container (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900, help="per sandbox, seconds")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for README.md)")
    p.add_argument("--json", help="also write all samples and medians to this file")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tool", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--host-netns", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    return inside(args) if args.inside else driver(args)


if __name__ == "__main__":
    sys.exit(main())
