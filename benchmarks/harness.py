"""What every benchmark driver shares: the throwaway sandbox, timing, statistics, the machine
line and the result tables. Imported by benchmarks/run.py and benchmarks/firewall_run.py (and
the other *_bench.py scripts for the statistics), which run from this folder.

A measurement runs as `netctl --state-dir /run/netctl/state sandbox -- <script> --inside ...`
(controller/kernel/sandbox.py: own network, mount, UTS and PID namespaces, private tmpfs on
/run/netns, /etc/netns and /run/netctl, a fresh /sys, lo up); the script prints one
`RESULT {json}` line and the driver reads it back. Nothing outlives the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
NETCTL = str(VENV_BIN / "netctl") if (VENV_BIN / "netctl").exists() else shutil.which("netctl") or "netctl"
STATE_DIR = "/run/netctl/state"
RESULT = "RESULT "

# ------------------------------------------------------------------------------------ sandbox


def sandbox_argv(script: Path, extra: Sequence[str]) -> list[str]:
    """`script` again, inside a throwaway sandbox host (netctl's own `netctl sandbox`)."""
    return [NETCTL, "--state-dir", STATE_DIR, "sandbox", "--", PYTHON, str(script), "--inside",
            "--host-netns", os.readlink("/proc/self/ns/net"), *extra]


def sandboxed(script: Path, extra: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run one measurement in its own sandbox; its RESULT, or {"error": ...}."""
    try:
        proc = subprocess.run(sandbox_argv(script, extra), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"sandbox timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT):])
            return result
    return {"error": f"sandbox exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}


def report(result: dict[str, Any]) -> None:
    """Inside: hand the measurement to the driver."""
    print(RESULT + json.dumps(result), flush=True)


def require_sandbox(host_netns: str, tmpfs: Sequence[str] = (), folders: Sequence[str] = ()) -> None:
    """Inside: refuse to run anywhere but an empty sandbox host; then private tmpfs on `tmpfs`
    (on top of the sandbox's own) and the `folders` a trial needs."""
    from controller.kernel.netns import mount

    if os.readlink("/proc/self/ns/net") == host_netns or os.environ.get("NETCTL_SANDBOX") != "1":
        sys.exit("refusing to run: not inside a netctl sandbox")
    links = os.listdir("/sys/class/net")
    if links != ["lo"]:
        sys.exit(f"refusing to run: sandbox network namespace is not empty: {links}")
    for folder in tmpfs:
        mount("tmpfs", folder, "tmpfs", 0, "mode=0755")
    for folder in (STATE_DIR, *folders):
        os.makedirs(folder, exist_ok=True)


def last_pid() -> int:
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int | None, str]:
    """Run argv; (seconds, tasks created, output). Fails loudly on a non-zero exit. Tasks are
    the PIDs allocated in the sandbox's PID namespace meanwhile (processes and threads)."""
    before = last_pid()
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env
    )
    elapsed = time.perf_counter() - t0
    after = last_pid()
    tasks = after - before if after >= before else None  # wrapped around pid_max
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return elapsed, tasks, proc.stdout


# --------------------------------------------------------------------------------- statistics


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_s(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def fmt_x(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}×"


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1000:.0f}"


# ------------------------------------------------------------------------------ machine, tables


def source_digest(root: Path = ROOT) -> str:
    """Which netctl is measured: sha256 over controller/**/*.py."""
    digest = hashlib.sha256()
    for source in sorted((root / "controller").rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def version(argv: list[str]) -> str:
    """A tool's first line of `--version` output, or '?'."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine(tools: Sequence[str] = (), digest: str = "") -> str:
    """One line: CPUs, memory, kernel, Python, pyroute2, the peers' versions, netctl's digest."""
    import pyroute2

    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1048576
    extra = "".join(f", {t}" for t in tools)
    return (
        f"{os.cpu_count()} CPU ({model or platform.machine()}), {mem:.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}, pyroute2 {pyroute2.__version__}"
        f"{extra}, {version(['ip', '-V'])}; netctl sources sha256 {digest or source_digest()}"
    )


def markdown(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c or " " for c in row) + " |" for row in body]
    return "\n".join(lines)


def plain(headers: Sequence[str], body: Sequence[Sequence[str]], right: bool = False) -> str:
    """A table as aligned text columns."""
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    align = str.rjust if right else str.ljust
    lines = ["  ".join(align(h, w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(align(c, w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def targets_text(checks: Sequence[tuple[str, str, bool | None]], as_markdown: bool) -> str:
    """The issue's targets: (description, measured, met) as a table or as ok/MISS lines."""
    if as_markdown:
        return markdown(["target", "measured", "met"],
                        [[d, m, "—" if ok is None else ("yes" if ok else "**no**")] for d, m, ok in checks])
    return "\n".join(f"{'ok  ' if ok else 'MISS'}  {d}: {m}" for d, m, ok in checks)
