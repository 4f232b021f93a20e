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
`unshare --net --mount --uts --pid --fork --mount-proc --propagation private`, and inside mounts
tmpfs on /run/netns, /etc/netns and /run/netctl (netctl's state dir lives there), plus a fresh
sysfs on /sys. Nothing is created in the machine's own network namespace; everything vanishes
when the sandbox's last process exits. Each step is timed from the outside (wall clock around
the subprocess, so interpreter start-up and imports count for every tool alike).

The `tasks` column counts the processes and threads created during setup (PIDs allocated in the
sandbox's private PID namespace), including the tool's own process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
NETCTL = str(VENV_BIN / "netctl") if (VENV_BIN / "netctl").exists() else shutil.which("netctl") or "netctl"

TOOLS = ("floor", "netctl", "shell")
BRIDGE = {"netctl": "netctl0", "shell": "br0", "floor": "br0"}
PRIVATE_DIRS = ("/run/netns", "/etc/netns", "/run/netctl")
STATE_DIR = "/run/netctl/state"
WORK_DIR = "/run/netctl/bench"

# ------------------------------------------------------------------------------------------- inside


def _libc_mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None):
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def enter_sandbox(host_netns: str) -> None:
    """Called as PID 1 of a fresh net+mount+pid namespace: make it a clean sandbox host."""
    if os.readlink("/proc/self/ns/net") == host_netns:
        sys.exit("refusing to run: not inside a new network namespace")
    for folder in PRIVATE_DIRS:
        os.makedirs(folder, exist_ok=True)  # mount points; the tmpfs on top is private
        _libc_mount("tmpfs", folder, "tmpfs", 0, "mode=0755")
    _libc_mount("sysfs", "/sys", "sysfs")
    links = os.listdir("/sys/class/net")
    if links != ["lo"]:
        sys.exit(f"refusing to run: sandbox network namespace is not empty: {links}")
    os.makedirs(STATE_DIR)
    os.makedirs(WORK_DIR)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["NETCTL_SANDBOX"] = "1"
    os.environ["NETCTL_STATE_DIR"] = STATE_DIR


def last_pid() -> int:
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


def timed(argv: list[str]) -> tuple[float, int, str]:
    """Run argv, return (seconds, tasks created, output); fail loudly on a non-zero exit."""
    before = last_pid()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    tasks = last_pid() - before
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return elapsed, tasks, proc.stdout


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
    enter_sandbox(args.host_netns)
    try:
        result = trial(args.tool, args.n)
    except Exception as exc:  # report to the driver, which prints it
        result = {"tool": args.tool, "n": args.n, "error": str(exc)}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------------- driver


def sandboxed(tool: str, n: int, timeout: float) -> dict[str, Any]:
    host_netns = os.readlink("/proc/self/ns/net")
    argv = ["unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
            "--propagation", "private", "--",
            PYTHON, str(Path(__file__).resolve()), "--inside", "--tool", tool, "--n", str(n),
            "--host-netns", host_netns]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT "):])
            return result
    return {"tool": tool, "n": n, "error": f"sandbox exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


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


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_s(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def fmt_x(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}×"


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


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1048576:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    ip_version = subprocess.run(["ip", "-V"], capture_output=True, text=True).stdout.strip()
    import hashlib

    import pyroute2

    digest = hashlib.sha256()
    for source in sorted((ROOT / "controller").rglob("*.py")):
        digest.update(source.read_bytes())
    return (f"{os.cpu_count()} CPU ({model or platform.machine()}){mem}, Linux {platform.release()}, "
            f"Python {platform.python_version()}, pyroute2 {pyroute2.__version__}, {ip_version}; "
            f"netctl sources sha256 {source_digest()}")


def source_digest() -> str:
    """Which netctl was measured (sha256 over controller/**/*.py)."""
    import hashlib

    digest = hashlib.sha256()
    for source in sorted((ROOT / "controller").rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def markdown(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c or " " for c in row) + " |" for row in body]
    return "\n".join(lines)


def render(summary: Summary, sizes: list[int], tools: list[str], runs: int, as_markdown: bool) -> None:
    body = rows(summary, sizes, tools)
    checks = targets(summary, sizes)
    title = f"median wall time over {runs} run(s), seconds; each measurement in a fresh sandbox"
    if as_markdown:
        print(f"Machine: {machine()}\n")
        print(f"{title}\n")
        print(markdown(HEADERS, body))
        if not checks:
            return
        print()
        print(markdown(["target", "measured", "met"],
                       [[d, m, "—" if ok is None else ("yes" if ok else "**no**")] for d, m, ok in checks]))
        return
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADERS)]
        print(title)
        print("  ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True)))
        for r in body:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        for d, m, ok in checks:
            print(f"{'ok ' if ok else 'MISS'}  {d}: {m}")
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
                result = sandboxed(tool, n, args.timeout)
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
