#!/usr/bin/env python3
"""`netctl graph` on a large topology: 1,000 containers on 10 networks (pure: no kernel).

    .venv/bin/python benchmarks/graph_bench.py [--containers 1000] [--networks 10] [--runs 3]

Times, as medians: resolving the manifests (what any command pays), building the picture and
its DOT (`netctl graph`), Mermaid, and Graphviz's `dot` laying it out as SVG
(`--format svg`). The issue's target: 1,000 containers rendered in under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, machine

sys.path.insert(0, str(ROOT))
from controller import graph, load
from controller.cli.topology import _rendered
from controller.documents import build
from controller.model import Allocations
from controller.resolve import HostFacts, resolve
from tests.manifests import container, manifest, network


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--containers", type=int, default=1000)
    p.add_argument("--networks", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    nets = [network(f"n{i}", f"10.{100 + i}.0.0/16") for i in range(args.networks)]
    ctrs = [container(f"c{i}", f"n{i % args.networks}", ports=[f"{20000 + i}:80"] if i % 10 == 0 else [])
            for i in range(args.containers)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "big.yaml")
        path.write_text(manifest(*nets, *ctrs))
        samples: dict[str, list[float]] = {"resolve": [], "picture + DOT": [], "Mermaid": [], "SVG (dot)": []}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            target, _ = resolve(build(load.parse_paths([str(path)])), Allocations(), HostFacts(), "")
            t1 = time.perf_counter()
            source = graph.dot(graph.topology(target))
            t2 = time.perf_counter()
            graph.mermaid(graph.topology(target))
            t3 = time.perf_counter()
            svg = _rendered(source, "svg")
            t4 = time.perf_counter()
            for key, seconds in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                samples[key].append(seconds)
    print(f"Machine: {machine()}\n")
    print(f"{args.containers} containers on {args.networks} networks, medians of {args.runs} "
          f"(SVG: {len(svg) // 1024} KiB)\n")
    print("| step | seconds |\n|---|---|")
    for key, values in samples.items():
        print(f"| {key} | {statistics.median(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
