#!/usr/bin/env python3
"""Write a netctl manifest with N containers on the default `bridge` network.

    python benchmarks/gen_topology.py 100 > /tmp/topology-100.yaml
    python benchmarks/gen_topology.py 100 -o /tmp/topology-100.yaml

Containers are named c1 .. cN; each is one document:

    apiVersion: netctl/v1
    kind: Container
    metadata: {name: cN}
    spec: {networks: [bridge]}
"""

from __future__ import annotations

import argparse
import sys


def manifest(n: int) -> str:
    docs = [
        f"apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: c{i}\nspec:\n  networks: [bridge]\n"
        for i in range(1, n + 1)
    ]
    head = f"# {n} containers on the default bridge network (benchmarks/gen_topology.py)\n"
    return head + "---\n".join(docs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", type=int, help="number of containers")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    args = p.parse_args(argv)
    if not 1 <= args.n <= 65000:
        p.error("n must be between 1 and 65000 (one /16)")
    text = manifest(args.n)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
