"""`netctl graph` and `netctl explain`: the topology drawn, and asked why A can or cannot
reach B."""

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
EXPLAIN = """\
examples:
  netctl explain f1 b1:8000          two containers (isolated if on different bridge networks)
  netctl explain q1 db               DST by name, resolved as q1's resolver would
  netctl explain 198.18.0.2 host:8080   from outside the host to a published port
  netctl explain web 203.0.113.9:443/tcp -o json
exit status: 0 reachable, 1 blocked, 2 bad input
"""


def add_parsers(sub: Any) -> None:
    c = examples_parser(sub, "graph", "draw the networks, containers, addresses, ports and links", GRAPH)
    c.add_argument("-f", "--filename", dest="files", action="append", default=[], metavar="PATH",
                   help="draw these manifests alone, addressed as a fresh host would address them "
                        "(default: what is applied, as the kernel has it)")
    c.add_argument("--format", choices=FORMATS, default="dot", help="default: dot")
    c.add_argument("-o", "--output-file", metavar="FILE", help="write here instead of stdout")
    c.set_defaults(func=cmd_graph)
    e = examples_parser(sub, "explain", "say whether SRC can reach DST, hop by hop, and which "
                        "setting decides", EXPLAIN)
    e.add_argument("source", metavar="SRC", help="a container, `host`, or an IP address outside the host")
    e.add_argument("destination", metavar="DST[:PORT[/PROTO]]",
                   help="a container (resolved as SRC would resolve it), `host` (published ports), "
                        "or an IP address; PROTO tcp (default), udp or sctp")
    e.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    import json

    from controller import explain
    from controller.firewall.backend import is_rule
    from controller.model import Op

    with session(args) as s:
        outcome = s.current()
    verdict = explain.explain(outcome.target, args.source, args.destination, _host_addresses())
    actions = outcome.plan.actions
    # the kernel as it is: a route or DNAT the path needs and the plan would create is missing
    explain.with_kernel(verdict, {a.resource.key for a in actions if a.op is Op.CREATE})
    if actions:
        rules = sum(1 for a in actions if is_rule(a.resource.kind))
        verdict.notes.append(
            f"the kernel differs from what was applied ({len(actions)} changes, {rules} of them in the "
            "firewall; `netctl plan` lists them): this verdict is the applied state's, `netctl apply` "
            "restores it")
    verdict.notes.extend(outcome.notes)  # rules of other tables that drop what netctl accepts
    if args.output == "json":
        print(json.dumps(verdict.as_dict(), indent=2))
    else:
        print(f"{'reachable' if verdict.reachable else 'blocked'}: {args.source} -> {args.destination}"
              + ("" if verdict.port is None or "/" in args.destination else f"/{verdict.protocol}"))
        for step in verdict.steps:
            print(f"  via      {step}")
        for reason in verdict.reasons:
            print(f"  because  {reason}")
        for note in verdict.notes:
            print(f"  note     {note}")
    return 0 if verdict.reachable else 1


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


def _host_addresses() -> list[str]:
    """The host's own addresses, from the kernel (the uplink's are in no manifest)."""
    from controller.kernel import rtdump

    return [a.address for a in rtdump.dump(None, routes=False).addresses if a.address]


def _rendered(source: str, fmt: str) -> bytes:
    import graphviz

    try:
        picture: bytes = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UserError(f"--format {fmt} needs Graphviz's dot (Debian: apt install graphviz); "
                        "--format dot or mermaid need nothing") from None
    return picture
