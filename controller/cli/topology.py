"""`netctl graph` and `netctl explain`: the topology drawn, and asked why A can or cannot
reach B."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.cli.common import examples_parser, session
from controller.errors import UserError

if TYPE_CHECKING:
    from controller.firewall.foreign import Flow
    from controller.kernel.rtdump import Dump

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
    from controller.firewall import foreign
    from controller.firewall.backend import current as current_backend
    from controller.firewall.backend import is_rule
    from controller.kernel import rtdump
    from controller.model import Op

    with session(args) as s:
        outcome = s.current()
        backend = current_backend().name
    host = rtdump.dump(None)
    addresses = [a.address for a in host.addresses if a.address]
    verdict = explain.explain(outcome.target, args.source, args.destination, addresses)
    actions = outcome.plan.actions
    # the kernel as it is: a route or DNAT the path needs and the plan would create is missing
    explain.with_kernel(verdict, {a.resource.key for a in actions if a.op is Op.CREATE})
    if verdict.flow is not None:  # and what the rest of the host's firewall does to the packet
        flow = _with_interfaces(verdict.flow, host)
        ours = backend == "iptables"  # its FORWARD jump: the rules above it decide first
        walk = foreign.first_decision(flow, _filter_chains(flow.src), netctl_owns_forward=ours)
        explain.with_foreign(verdict, walk)
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


def _with_interfaces(flow: Flow, host: Dump) -> Flow:
    """The flow's interfaces the target cannot know (the uplink): the host's route to the
    other end, as the kernel would pick it (longest prefix)."""
    import dataclasses
    import ipaddress

    def via(address: str) -> str | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        best: tuple[int, int] | None = None
        for r in host.routes:
            if r.family != (10 if ip.version == 6 else 2):
                continue
            net = ipaddress.ip_network(f"{r.dst or ('::' if ip.version == 6 else '0.0.0.0')}/{r.dst_len}",
                                       strict=False)
            if ip in net and (best is None or r.dst_len > best[0]):
                best = (r.dst_len, r.oif)
        link = host.links.get(best[1]) if best else None
        return link.name if link else None

    return dataclasses.replace(flow, iif=flow.iif or via(flow.src), oif=flow.oif or via(flow.dst))


def _filter_chains(source: str) -> dict[str, list[str]]:
    """iptables' filter table as `iptables-save` shows it (ip6tables' for an IPv6 flow)."""
    import shutil
    import subprocess

    from controller.firewall import iptables

    tool = "ip6tables-save" if ":" in source else "iptables-save"
    if shutil.which(tool) is None:
        return {}
    text = subprocess.run([tool, "-t", "filter"], capture_output=True, text=True).stdout
    table = iptables.parse_save(text).get("filter")
    return table.chains if table else {}


def _rendered(source: str, fmt: str) -> bytes:
    import graphviz

    try:
        picture: bytes = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UserError(f"--format {fmt} needs Graphviz's dot (Debian: apt install graphviz); "
                        "--format dot or mermaid need nothing") from None
    return picture
