"""`netctl graph`'s picture (pure): the seed tour's nodes and edges, drift, both formats.
The DOT is parsed back by Graphviz itself (`dot -Tjson`), not by string matching."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from topologies import ids

from controller import graph, hostconfig, load
from controller.documents import build
from controller.model import Allocations
from controller.resolve import HostFacts, resolve

SEED = Path(__file__).parents[2] / "examples" / "seed-tour.yaml"
EXTRA = """
apiVersion: netctl/v1
kind: Container
metadata: {name: web}
spec:
  networks: [isolated_nw]
  ports: ["8080:80"]
  links: ["container3:db"]
"""


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(hostconfig, "current", lambda: hostconfig.HostConfig())
    extra = tmp_path / "extra.yaml"
    extra.write_text(EXTRA)
    docs = load.parse_paths([str(SEED), str(extra)])
    return resolve(build(docs), Allocations(), HostFacts(), "now", new_id=ids())[0]


def parsed(source: str) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str]]]:
    """Graphviz's own reading of the DOT: nodes by name, edges as (tail, head, label)."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (install.sh installs it)")
    out = json.loads(subprocess.run(["dot", "-Tjson"], input=source, capture_output=True, text=True,
                                    check=True).stdout)
    objects = out.get("objects", [])
    nodes = {o["name"]: o for o in objects}
    edges = [(objects[e["tail"]]["name"], objects[e["head"]]["name"], e.get("label", ""))
             for e in out.get("edges", [])]
    return nodes, edges


def test_the_seed_tour_as_dot(target: Any) -> None:
    nodes, edges = parsed(graph.dot(graph.topology(target)))
    assert {"net/bridge", "net/isolated_nw", "ctr/container1", "ctr/container2", "ctr/container3",
            "ctr/networkdisabled", "ctr/web", "host"} <= nodes.keys()
    assert "net/host" not in nodes  # no container on it: nothing to draw
    assert "172.18.0.0/16" in nodes["net/isolated_nw"]["label"]
    endpoint = {(t, h) for t, h, _ in edges}
    assert ("ctr/container1", "net/bridge") in endpoint and ("ctr/container3", "net/isolated_nw") in endpoint
    assert not any(t == "ctr/networkdisabled" for t, _ in endpoint)  # none: no endpoint
    labels = {(t, h): label for t, h, label in edges}
    assert labels[("ctr/container1", "net/bridge")] == "eth0 172.17.0.2"
    assert labels[("host", "ctr/web")] == "0.0.0.0:8080->80/tcp"
    assert labels[("ctr/web", "ctr/container3")] == "link db"
    assert all(n.get("color") != graph.DRIFT for n in nodes.values())


def test_drift_is_highlighted(target: Any) -> None:
    nodes, _ = parsed(graph.dot(graph.topology(target, {("Container", "container2")})))
    assert nodes["ctr/container2"]["color"] == graph.DRIFT and "dashed" in nodes["ctr/container2"]["style"]
    assert nodes["ctr/container1"].get("color") != graph.DRIFT


def test_mermaid(target: Any) -> None:
    text = graph.mermaid(graph.topology(target, {("Network", "isolated_nw")}))
    lines = text.splitlines()
    assert lines[0] == "graph LR"
    assert any('(["container1"])' in line for line in lines)
    assert any("-->|0.0.0.0:8080->80/tcp|" in line for line in lines)
    assert any(line.strip().startswith("style ") and graph.DRIFT in line for line in lines)
