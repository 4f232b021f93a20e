"""The topology as a picture (pure): networks, containers with their addresses, published
ports, links; drift highlighted. `netctl graph` renders it.

DOT is built with the `graphviz` package (its quoting and escaping, not ours); Mermaid is a
few lines of text. SVG and PNG are Graphviz's `dot` at the CLI's end.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import graphviz

from controller import render
from controller.model import Target

DRIFT = "#d62728"  # what differs from the kernel: red, dashed


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # network | container | host
    label: str
    drift: bool = False


@dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    kind: str  # endpoint | link | port
    label: str


@dataclass
class Topology:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def topology(target: Target, drifted: Collection[tuple[str, str]] = ()) -> Topology:
    """`drifted`: ("Network" | "Container", name) of objects whose kernel state differs."""
    t = Topology()
    used = {e.network for c in target.containers for e in c.endpoints}
    for n in sorted(target.networks, key=lambda n: n.name):
        if n.builtin and n.name not in used:
            continue  # host and none without containers say nothing
        subnets = ", ".join(str(s.subnet) for s in n.subnets)
        flags = [f for f, on in (("internal", n.internal), (n.scope, n.scope != "local")) if on]
        kind = " ".join([f"{render.driver_shown(n.driver)} driver", *flags])
        label = "\n".join(x for x in (n.name, kind, subnets, n.device or "") if x)
        t.nodes.append(Node(f"net/{n.name}", "network", label, ("Network", n.name) in drifted))
    published = False
    for c in sorted(target.containers, key=lambda c: c.name):
        alone = "" if c.endpoints else ("\n(host's network)" if c.netns is None else "\n(no network)")
        t.nodes.append(Node(f"ctr/{c.name}", "container", c.name + alone, ("Container", c.name) in drifted))
        for ep in c.endpoints:
            addresses = " ".join(str(a.ip) for a in (ep.ipv4, ep.ipv6) if a is not None)
            t.edges.append(Edge(f"ctr/{c.name}", f"net/{ep.network}", "endpoint",
                                f"{ep.ifname} {addresses}".strip()))
        for link in c.links:
            t.edges.append(Edge(f"ctr/{c.name}", f"ctr/{link.container}", "link", f"link {link.alias}"))
        if c.ports:
            published = True
            t.edges.append(Edge("host", f"ctr/{c.name}", "port", render.ports_shown(c.ports)))
    if published:
        t.nodes.insert(0, Node("host", "host", "host (published ports)"))
    return t


STYLE = {
    "network": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbe9f6"},
    "container": {"shape": "ellipse", "style": "filled", "fillcolor": "#f2f2f2"},
    "host": {"shape": "house", "style": "filled", "fillcolor": "#fdebd0"},
}
EDGE_STYLE = {"endpoint": {}, "link": {"style": "dashed", "dir": "forward"},
              "port": {"color": "#e67e22", "dir": "forward"}}


def dot(t: Topology) -> str:
    g = graphviz.Graph("netctl", graph_attr={"rankdir": "LR", "fontname": "Helvetica"},
                       node_attr={"fontname": "Helvetica", "fontsize": "11"},
                       edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    for n in t.nodes:
        attrs = dict(STYLE[n.kind])
        if n.drift:
            attrs.update(color=DRIFT, style=attrs["style"] + ",dashed", penwidth="2",
                         xlabel="drift")
        g.node(n.id, n.label, **attrs)
    for e in t.edges:
        g.edge(e.tail, e.head, e.label, **EDGE_STYLE[e.kind])
    source: str = g.source
    return source


def mermaid(t: Topology) -> str:
    ids = {n.id: f"n{i}" for i, n in enumerate(t.nodes)}
    shapes = {"network": ('["', '"]'), "container": ('(["', '"])'), "host": ('[/"', '"\\]')}
    lines = ["graph LR"]
    for n in t.nodes:
        left, right = shapes[n.kind]
        lines.append(f"  {ids[n.id]}{left}{_mermaid_text(n.label)}{right}")
    arrows = {"endpoint": "---", "link": "-.->", "port": "-->"}
    for e in t.edges:
        if e.tail in ids and e.head in ids:
            lines.append(f"  {ids[e.tail]} {arrows[e.kind]}|{_mermaid_text(e.label)}| {ids[e.head]}")
    for n in t.nodes:
        if n.drift:
            lines.append(f"  style {ids[n.id]} stroke:{DRIFT},stroke-dasharray:4")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;").replace("\n", "<br/>")
