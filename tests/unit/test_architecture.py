"""The shape of the code, checked: no import cycle between netctl's modules (function-level
imports count too), and the checks the architecture issue names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def test_no_import_cycle() -> None:
    graph = grimp.build_graph("controller")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(" -> ".join((module, *chain)))
    assert cycles == [], "\n".join(cycles)


def test_the_core_never_names_a_driver_or_an_option_key() -> None:
    pattern = re.compile(r'driver (==|!=|in|not in)|"com\.docker\.network')
    found = []
    for path in (ROOT / "controller").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("controller/drivers/") or relative == "controller/options.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_every_exception_is_in_the_error_tree() -> None:
    out = subprocess.run(
        ["grep", "-rnE", r"^class \w+\((Exception|ValueError|RuntimeError|KeyError|OSError)\)", "controller"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout
    assert [ln for ln in out.splitlines() if not ln.startswith("controller/errors.py")] == []
