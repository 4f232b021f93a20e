"""Fuzzed manifests through the loader: each is accepted, or rejected with netctl's own error
carrying the file and a line; nothing else may escape (no raw Python exception).

Valid documents are mutated where a user (or an attacker) would go wrong: wrong types,
missing and extra keys, out-of-range numbers, bad CIDRs and addresses, overlaps and
duplicates, huge strings, unicode and control characters in every name field, newlines,
YAML bombs and tags, bytes that are not UTF-8. CI runs a fixed-seed 2,000 cases;
`NETCTL_FUZZ_CASES=50000 ./test.sh tests/unit/test_fuzz_load.py` is the long mode.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import load
from controller.documents import build
from controller.errors import ManifestError, UserError
from controller.model import Allocations
from controller.resolve import HostFacts, resolve

CASES = int(os.environ.get("NETCTL_FUZZ_CASES", "2000"))

NETWORK: dict[str, Any] = {
    "apiVersion": "netctl/v1", "kind": "Network", "metadata": {"name": "front", "labels": {"a": "b"}},
    "spec": {
        "driver": "bridge", "internal": False, "enableIPv6": True,
        "ipam": {"config": [{"subnet": "10.7.0.0/24", "gateway": "10.7.0.1", "ipRange": "10.7.0.128/25",
                             "auxAddresses": {"r": "10.7.0.5"}},
                            {"subnet": "fd00:7::/64"}]},
        "options": {"com.docker.network.bridge.name": "br-front", "com.docker.network.driver.mtu": "1500",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0"},
    },
}
CONTAINER: dict[str, Any] = {
    "apiVersion": "netctl/v1", "kind": "Container", "metadata": {"name": "web"},
    "spec": {
        "hostname": "web", "networks": [{"name": "front", "ipv4Address": "10.7.0.200", "aliases": ["www"]},
                                        "bridge"],
        "ports": ["8080:80", "127.0.0.1:5353:53/udp", {"containerPort": 81, "hostPort": 8081}],
        "expose": [80, "53/udp"], "links": ["db:database"], "dns": ["10.0.0.53"],
        "dnsSearch": ["corp.example"], "dnsOptions": ["ndots:2"], "extraHosts": ["db.local:10.0.0.5"],
    },
}
DB: dict[str, Any] = {"apiVersion": "netctl/v1", "kind": "Container", "metadata": {"name": "db"},
                      "spec": {"networks": ["front"]}}

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=300),
    st.sampled_from([
        "", " ", "\n", "a\nb", "a\x00b", "\x1b[31m", "#x", "%d", "b+", "..", "/", "0/0", "10.0.0.0/33",
        "300.1.1.1", "1.2.3", "0x0a.0.0.1", "[::1]", "::/0", "224.0.0.0/4", "127.0.0.0/8",
        "10.7.0.0/31", "fd00::/127", "65536", "-1", "0", "1e3", "80-70", "1:2:3:4",
        "\u202e", "\ufeff", "x" * 5000, "ndots:1#x", "db:", ":db", "a:b:c",
        "10.8.0.0/24", "10.7.0.0/24", "br-front", "netctl0", "web", "front", "yes", "no",
    ]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return doc


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    docs = [copy.deepcopy(d) for d in (NETWORK, CONTAINER, DB)]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(docs) - 1))
        path = draw(st.sampled_from(_paths(docs[i])))
        action = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "duplicate"]))
        if action == "set":
            docs[i] = _set(docs[i], path, draw(HOSTILE))
        elif action == "delete":
            docs[i] = _delete(docs[i], path)
        elif action == "extra" and isinstance(docs[i], dict):
            docs[i][draw(st.text(min_size=1, max_size=12))] = draw(HOSTILE)
        elif action == "duplicate":
            docs.append(copy.deepcopy(docs[i]))
    text = "---\n".join(yaml.safe_dump(d, allow_unicode=True, sort_keys=False) for d in docs)
    tail = draw(st.sampled_from([
        "", "", "", "---\n!!python/object:os.system {}\n", "---\nkind: !custom x\n",
        "---\na: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
        "---\n[unclosed\n", "---\n\t- tab\n", "---\nkey: value\nkey: again\n",
    ]))
    data = (text + tail).encode()
    if draw(st.integers(min_value=0, max_value=30)) == 0:
        data += b"\xff\xfe not utf-8\n"
    return data


@settings(max_examples=CASES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(manifests())
def test_every_manifest_is_accepted_or_refused_with_its_place(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        docs = load.parse_paths([str(path)])
        spec = build(docs)
        resolve(spec, Allocations(), HostFacts(), "now")
    except ManifestError as exc:
        assert exc.problems and all(p.file == str(path) for p in exc.problems), exc.problems
        assert all(p.line > 0 or not p.path for p in exc.problems), exc.problems
    except UserError as exc:  # refused after validation: must still say something readable
        assert str(exc), exc
