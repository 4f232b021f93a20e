#!/usr/bin/env python3
"""Profile netctl (cProfile) on N containers: fresh apply, no-op apply, delete, in a sandbox.

    .venv/bin/python benchmarks/profile_netctl.py 500            # top functions of each step
    .venv/bin/python benchmarks/profile_netctl.py 500 --keep /tmp/prof   # also keep the .prof files

Runs in a throwaway sandbox exactly like benchmarks/run.py (new net+mount+pid namespaces,
tmpfs on /run/netns, /etc/netns, /run/netctl). Prints, per step, the wall time without the
profiler, then the top functions by cumulative time inside controller/ and the top functions
overall by own (tottime) time. Profiled times are ~1.5-2x the real ones.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the sandbox helpers)

STEPS = (("apply", "apply"), ("no-op", "apply"), ("delete", "delete"))


def inside(n: int, top: int, keep: str | None, host_netns: str) -> int:
    run.enter_sandbox(host_netns)
    topo = f"{run.WORK_DIR}/topology-{n}.yaml"
    subprocess.run([run.PYTHON, str(HERE / "gen_topology.py"), str(n), "-o", topo], check=True)
    base = ["--state-dir", run.STATE_DIR]
    # one unprofiled round for the real times
    real = {}
    for label, verb in STEPS:
        t0 = time.perf_counter()
        subprocess.run([run.NETCTL, *base, verb, "-f", topo], check=True, capture_output=True, cwd=run.ROOT)
        real[label] = time.perf_counter() - t0
    time.sleep(1 + n * 0.004)
    for label, verb in STEPS:
        out = f"{run.WORK_DIR}/{label}.prof"
        profiled = [run.PYTHON, "-m", "cProfile", "-o", out, "-m", "controller.cli", *base, verb, "-f", topo]
        subprocess.run(profiled, check=True, capture_output=True, cwd=run.ROOT)
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(out, os.path.join(keep, f"{label}-{n}.prof"))
        print(f"\n======== {label} (N={n}): {real[label]:.3f} s unprofiled")
        for restriction, key in ((("controller/", top), "cumulative"), ((top,), "tottime")):
            buf = io.StringIO()
            stats = pstats.Stats(out, stream=buf)
            stats.sort_stats(key).print_stats(*restriction)
            text = buf.getvalue()
            text = text[text.find("   ncalls"):]
            print(f"---- by {key}{' (controller/ only)' if key == 'cumulative' else ''}")
            print("\n".join(line[:200] for line in text.rstrip().splitlines()))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", type=int, nargs="?", default=500)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--keep", help="copy the .prof files to this folder")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--host-netns", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inside:
        return inside(args.n, args.top, args.keep, args.host_netns)
    if os.geteuid() != 0:
        sys.exit("needs root; everything runs inside a throwaway sandbox")
    argv = ["unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
            "--propagation", "private", "--",
            run.PYTHON, str(Path(__file__).resolve()), str(args.n), "--top", str(args.top),
            "--inside", "--host-netns", os.readlink("/proc/self/ns/net")]
    if args.keep:
        argv += ["--keep", os.path.abspath(args.keep)]
    return subprocess.run(argv).returncode


if __name__ == "__main__":
    sys.exit(main())
