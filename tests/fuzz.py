"""Generated manifests for the fuzz suites (tests/unit/test_fuzz_load.py, tests/kernel/test_fuzz_apply.py).

Both start from the same valid topology (a network with every IPAM and bridge option, a
container using every networking key, a second container it links to):

- `manifests()` mutates it where a user (or an attacker) would go wrong: wrong types, missing
  and extra keys, out-of-range numbers, bad CIDRs and addresses, overlaps and duplicates, huge
  strings, unicode and control characters in every name field, newlines, YAML bombs and
  tags, bytes that are not UTF-8. Most of these are refused; some happen to be valid.
- `variations()` changes it only in ways that stay valid: optional keys dropped, values
  swapped for other valid ones, more containers. Every one must be accepted, and applies.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import strategies as st

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


# --------------------------------------------------------------------------- hostile mutations


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


# --------------------------------------------------------------------------- valid variations

# Other valid values, by key: swapped in for the topology's own.
VALID: dict[str, list[Any]] = {
    "labels": [{}, {"a": "b"}, {"example.com/tier": "front", "x": ""}],
    "internal": [True, False],
    "gateway": ["10.7.0.1", "10.7.0.254", "10.7.0.100"],
    "ipRange": ["10.7.0.128/25", "10.7.0.192/26", "10.7.0.0/24"],
    "auxAddresses": [{}, {"r": "10.7.0.5"}, {"r": "10.7.0.5", "s": "10.7.0.6"}],
    "com.docker.network.bridge.name": ["br-front", "front0", "b2345678901234x", "br.lan"],
    "com.docker.network.driver.mtu": ["1280", "1400", "1500", "9000"],
    "com.docker.network.bridge.enable_icc": ["true", "false"],
    "com.docker.network.bridge.enable_ip_masquerade": ["true", "false"],
    "com.docker.network.bridge.host_binding_ipv4": ["0.0.0.0", "127.0.0.1"],
    "hostname": ["web", "w-1", "h" * 63, "web.corp.example"],
    "ipv4Address": ["10.7.0.200", "10.7.0.250", "10.7.0.201"],
    "aliases": [[], ["www"], ["www", "web-2", "api.internal"]],
    "ports": [[], ["8080:80"], ["127.0.0.1:5353:53/udp"], [{"containerPort": 81, "hostPort": 8081}],
              ["9000-9002:9000-9002"], ["8080:80", "8443:443/tcp", "5353:53/udp"]],
    "expose": [[], [80], ["53/udp", "443/tcp"], ["8000-8002"]],
    "links": [[], ["db:database"], ["db"]],
    "dns": [[], ["10.0.0.53"], ["10.0.0.53", "fd00::53"]],
    "dnsSearch": [[], ["corp.example"], ["a.example", "b.example."]],
    "dnsOptions": [[], ["ndots:2"], ["timeout:1", "attempts:3", "edns0"]],
    "extraHosts": [[], ["db.local:10.0.0.5"], ["v6.local:fd00::1", "gw:10.0.0.1"]],
}
# Keys a user may leave out.
OPTIONAL = {"labels", "internal", "gateway", "ipRange", "auxAddresses", "options", "hostname",
            "ipv4Address", "aliases", "ports", "expose", "links", "dns", "dnsSearch", "dnsOptions",
            "extraHosts", *(k for k in VALID if k.startswith("com.docker."))}


def _keyed_paths(node: Any) -> list[tuple[Any, ...]]:
    """Paths that end at a key of a mapping."""
    return [p for p in _paths(node) if p and isinstance(p[-1], str)]


@st.composite
def variations(draw: st.DrawFn) -> bytes:
    docs = [copy.deepcopy(d) for d in (NETWORK, CONTAINER, DB)]
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        i = draw(st.integers(min_value=0, max_value=len(docs) - 1))
        candidates = [p for p in _keyed_paths(docs[i]) if p[-1] in VALID or p[-1] in OPTIONAL]
        if not candidates:
            continue
        path = draw(st.sampled_from(candidates))
        if path[-1] in OPTIONAL and draw(st.booleans()):
            docs[i] = _delete(docs[i], path)
        elif path[-1] in VALID:
            docs[i] = _set(docs[i], path, copy.deepcopy(draw(st.sampled_from(VALID[path[-1]]))))
    web = docs[1]["spec"]
    if draw(st.booleans()):  # IPv4 only
        del docs[0]["spec"]["ipam"]["config"][1]
        docs[0]["spec"]["enableIPv6"] = False
    if draw(st.booleans()):  # web only on its network, or only on the default bridge
        web["networks"] = [draw(st.sampled_from(web["networks"]))]
    names = {n if isinstance(n, str) else n["name"] for n in web.get("networks", ["bridge"])}
    if docs[0]["spec"].get("internal") and names == {"front"}:
        web.pop("ports", None)  # nothing to publish from (refused, rightly)
    extra = draw(st.integers(min_value=0, max_value=3))
    docs += [{"apiVersion": "netctl/v1", "kind": "Container", "metadata": {"name": f"c{n}"},
              "spec": {"networks": [draw(st.sampled_from(["front", "bridge"]))]}} for n in range(extra)]
    return "---\n".join(yaml.safe_dump(d, allow_unicode=True, sort_keys=False) for d in docs).encode()
