"""`netctl graph`: the topology drawn, from the kernel's state or from manifests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from controller.cli.common import examples_parser, session
from controller.errors import UserError

GRAPH = """\
examples:
  netctl graph                              DOT of what is applied, drift in red
  netctl graph --format svg -o topology.svg
  netctl graph -f topology.yaml --format png -o plan.png   what the files would build
  netctl graph --format mermaid >> README.md
"""
FORMATS = ("dot", "mermaid", "svg", "png")


def add_parsers(sub: Any) -> None:
    c = examples_parser(sub, "graph", "draw the networks, containers, addresses, ports and links", GRAPH)
    c.add_argument("-f", "--filename", dest="files", action="append", default=[], metavar="PATH",
                   help="draw these manifests alone, addressed as a fresh host would address them "
                        "(default: what is applied, as the kernel has it)")
    c.add_argument("--format", choices=FORMATS, default="dot", help="default: dot")
    c.add_argument("-o", "--output-file", metavar="FILE", help="write here instead of stdout")
    c.set_defaults(func=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    from controller import graph, load, planview

    if args.files:  # the files alone, as a fresh host would build them: no state, no kernel
        from controller.documents import build
        from controller.model import Allocations
        from controller.resolve import HostFacts, resolve

        target, _ = resolve(build(load.parse_paths(args.files)), Allocations(), HostFacts(), "")
        picture = graph.topology(target)
    else:
        with session(args) as s:
            outcome = s.current()
        picture = graph.topology(outcome.target, planview.owners_of(outcome.plan, outcome.target))
    if args.format == "mermaid":
        data = graph.mermaid(picture).encode()
    elif args.format == "dot":
        data = graph.dot(picture).encode()
    else:
        data = _rendered(graph.dot(picture), args.format)
    if args.output_file:
        Path(args.output_file).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


def _rendered(source: str, fmt: str) -> bytes:
    import graphviz

    try:
        picture: bytes = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UserError(f"--format {fmt} needs Graphviz's dot (Debian: apt install graphviz); "
                        "--format dot or mermaid need nothing") from None
    return picture
