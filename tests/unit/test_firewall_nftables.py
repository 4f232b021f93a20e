"""The nftables backend's pure layer: elements per network and container, port ranges as one
element, the transaction's order, reading back what `nft -j` prints, and the coexistence notes.

golden/nft-list.json is what the real `nft -j list table inet netctl` printed for TOPOLOGY's
script, in a network namespace of its own; after a change to the table's chains or sets,
regenerate it (as root): `python tests/unit/test_firewall_nftables.py`.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from topologies import DEFAULT_BRIDGE, HOST, NONE, container, network, resolved, spec

from controller.daemon.events import nftables_tables
from controller.firewall import nftables, nftcache
from controller.firewall.backend import foreign_drops
from controller.kernel import nft as kernel_nft
from controller.model import (
    Action,
    Attachment,
    IPAMConfig,
    Kind,
    Link,
    NetworkSpec,
    Op,
    PortSpec,
    Protocol,
    Resource,
    Spec,
)

GOLDEN = Path(__file__).parent / "golden" / "nft-list.json"


def topology(extra_ports: int = 0) -> Spec:
    ports = (
        PortSpec(80, 8080), PortSpec(53, 5353, "127.0.0.1", Protocol.UDP),
        *(PortSpec(p, p) for p in range(9000, 9004)),  # one range element
        *(PortSpec(p, 20000 + p) for p in range(100, 100 + extra_ports)),
    )
    no_icc = {**DEFAULT_BRIDGE.options, "com.docker.network.bridge.enable_icc": "false"}
    return spec(
        dataclasses.replace(DEFAULT_BRIDGE, options=no_icc), HOST, NONE,
        NetworkSpec("front", enable_ipv6=True,
                    ipam=(IPAMConfig(subnet="10.30.1.0/24"), IPAMConfig(subnet="fd00:30:1::/64"))),
        network("back", "10.30.2.0/24", options={"com.docker.network.bridge.enable_icc": "false"}),
        network("sealed", "10.30.3.0/24", internal=True),
        container("web", Attachment("front", "10.30.1.10"), "back", ports=ports),
        container("db", "back", "sealed"),
        container("a", "bridge"),
        container("b", "bridge", links=(Link("a", "alpha"),), ports=(PortSpec(5432, 15432),)),
        builtin=False,
    )


def wanted(s: Spec) -> list[Resource]:
    return nftables.resources(resolved(s)[0])


def elements(resources: list[Resource], set_name: str) -> list[Resource]:
    return [r for r in resources if r.kind is Kind.NFT_ELEMENT and r.attrs["set"] == set_name]


def test_a_run_of_same_ports_is_one_element() -> None:
    want = wanted(topology())
    keys = {r.attrs["key"] for r in elements(want, "dnat4anyrange")}
    assert keys == {"tcp . 9000-9003"}
    assert [r.attrs["value"] for r in elements(want, "dnat4anyrange")] == ["10.30.1.10"]
    # a port mapped to another one is a plain DNAT element, with the container's port
    assert {r.attrs["key"]: r.attrs["value"] for r in elements(want, "dnat4any")}["tcp . 8080"] \
        == "10.30.1.10 . 80"
    assert {r.attrs["key"] for r in elements(want, "loopback4")} == {"127.0.0.1 . udp . 5353"}


def test_one_more_published_port_adds_elements_and_rewrites_nothing() -> None:
    before = {r.key: r for r in wanted(topology(extra_ports=10))}
    after = {r.key: r for r in wanted(topology(extra_ports=11))}
    assert before[nftables.TABLE_KEY] == after[nftables.TABLE_KEY]  # chains and sets unchanged
    assert set(before) < set(after)
    added = sorted(after[k].attrs["set"] for k in set(after) - set(before))
    assert added == ["dnat4any", "dnat6any", "hairpin4", "hairpin6", "published4", "published6"]


def test_isolation_icc_and_links_are_map_and_set_elements() -> None:
    want = wanted(topology())
    intra = {r.attrs["key"]: r.attrs["value"] for r in elements(want, "intra")}
    assert sorted(intra.values()) == ["accept", "accept", "drop", "drop"]  # icc off: 2
    assert len(elements(want, "internal")) == 1 and len(elements(want, "outward")) == 3
    assert len(elements(want, "masquerade6")) == 1  # front's IPv6 subnet
    links = {r.attrs["key"] for r in elements(want, "linkdports4") + elements(want, "linksports4")}
    assert links == set()  # a link without exposed ports opens the pair in both directions
    assert len(elements(want, "links4")) == 2


def test_nothing_without_a_bridge_network() -> None:
    assert wanted(spec(HOST, NONE, container("h", "host"), builtin=False)) == []


def action(op: Op, r: Resource) -> Action:
    return Action(op, r)


def test_script_removes_before_it_adds_and_chunks_long_sets() -> None:
    want = wanted(topology())
    table = next(r for r in want if r.kind is Kind.NFT_TABLE)
    many = [nftables.element("containers4", [f"10.0.{i // 250}.{i % 250}"]) for i in range(1200)]
    gone = nftables.element("containers4", ["10.9.9.9"])
    lines = nftables.script([action(Op.CREATE, e) for e in many]
                            + [action(Op.UPDATE, table), action(Op.DELETE, gone)]).splitlines()
    assert lines[0] == "delete element inet netctl containers4 { 10.9.9.9 }"
    assert lines[1] == "add table inet netctl"
    adds = [line for line in lines if line.startswith("add element")]
    assert len(adds) == 3 and lines[-3:] == adds  # 500 per line, after the skeleton
    assert all("flush chain" not in line for line in lines[lines.index(adds[0]):])
    whole = nftables.script([action(Op.DELETE, table)])
    assert whole == "delete table inet netctl\n"


def test_what_nft_prints_reads_back_as_what_was_written() -> None:
    """The golden is real `nft -j` output (see the module's docstring)."""
    listing = json.loads(GOLDEN.read_text())
    seen = {r.key: r for r in nftables.owned_resources(listing)}
    want = {r.key: r for r in wanted(topology())}
    assert seen.keys() == want.keys()
    for key, r in want.items():
        assert seen[key].attrs == r.attrs, key


def test_the_table_as_last_known_is_kept_by_attrs() -> None:
    """The backend's cache (the state dir) keeps each resource's attrs only."""
    for r in nftables.owned_resources(json.loads(GOLDEN.read_text())):
        assert nftables.from_attrs(json.loads(json.dumps(r.attrs))) == r, r.key


def test_the_known_table_is_a_snapshot_and_a_journal_of_netctls_transactions(tmp_path: Path) -> None:
    table = nftables.table()
    a, b, c = (nftables.element("dnat4any", ["tcp", str(p)], ["10.0.0.2", "80"]) for p in (81, 82, 83))
    path = tmp_path / "nftables-table.json"
    known = nftcache.KnownTable(path)
    known.snapshot((7, 10), {r.key: r for r in (table, a, b)})
    known.append((7, 10), (7, 11), [c], [a.key], {r.key: r for r in (table, b, c)})
    assert len(path.read_text().splitlines()) == 2  # one more port: one line appended
    assert nftcache.KnownTable(path).load((7, 11)) == {r.key: r for r in (table, b, c)}
    assert nftcache.KnownTable(path).load((7, 12)) is None  # someone else committed since
    assert nftcache.KnownTable(path).load((8, 11)) is None  # another namespace
    # a journal this process did not see end at `before` (another command wrote it): a snapshot
    stale = nftcache.KnownTable(path)
    stale.append((7, 30), (7, 31), [a], [], {r.key: r for r in (table, a)})
    assert len(path.read_text().splitlines()) == 1
    assert nftcache.KnownTable(path).load((7, 31)) == {r.key: r for r in (table, a)}
    path.write_text(path.read_text() + '{"generation": [7, 32], "add": [')  # torn by a crash
    assert nftcache.KnownTable(path).load((7, 32)) is None
    nftcache.KnownTable(path).forget()
    assert not path.exists()


def test_the_journal_is_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nftcache, "JOURNAL_MAX", 3)
    path = tmp_path / "t.json"
    known = nftcache.KnownTable(path)
    known.snapshot((1, 1), {})
    elements = [nftables.element("containers4", [f"10.0.0.{i}"]) for i in range(5)]
    for i, e in enumerate(elements):
        known.append((1, 1 + i), (1, 2 + i), [e], [], {x.key: x for x in elements[: i + 1]})
    assert len(path.read_text().splitlines()) <= 3
    assert nftcache.KnownTable(path).load((1, 6)) == {x.key: x for x in elements}


def test_the_ruleset_generation_is_read_from_the_kernels_reply() -> None:
    newgen = (10 << 8) | 15
    attrs = struct.pack("=HH", 8, 1) + struct.pack(">I", 4711) + struct.pack("=HH", 8, 2) + b"\0\0\0\1"
    reply = struct.pack("=IHHII", 20 + len(attrs), newgen, 0, 1, 0) + b"\0\0\0\0" + attrs
    assert kernel_nft._generation_reply(7, reply) == (7, 4711)
    error = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -22) + bytes(16)
    assert kernel_nft._generation_reply(7, error) is None  # NLMSG_ERROR: no nf_tables
    assert kernel_nft._generation_reply(7, reply[:19]) is None


def test_a_hand_made_rule_changes_the_skeleton() -> None:
    listing = json.loads(GOLDEN.read_text())
    rule = next(i for i in listing["nftables"] if "rule" in i)
    listing["nftables"].append({"rule": {**rule["rule"], "comment": None, "handle": 999}})
    table = nftables.owned_resources(listing)[0]
    assert table.attrs["skeleton"] != nftables.table().attrs["skeleton"]
    assert nftables.owned_resources({"nftables": [{"metainfo": {}}]}) == []


def test_an_accept_mark_is_the_forward_chains_first_rule_and_reads_back() -> None:
    lines = nftables.skeleton_lines("0x1/0x3")
    forward = [line for line in lines if line.startswith("add rule inet netctl forward")]
    assert forward[0].startswith("add rule inet netctl forward meta mark and 0x3 == 0x1 accept comment")
    assert forward[0].endswith(' fwmark 0x1/0x3"')
    assert nftables.mark_rule("7") == "meta mark 7 accept"
    assert nftables.table("0x1").attrs["skeleton"] != nftables.table().attrs["skeleton"]
    listing = json.loads(GOLDEN.read_text())
    rule = next(i for i in listing["nftables"] if "rule" in i and i["rule"]["chain"] == "forward")
    marked = {"rule": {**rule["rule"], "comment": forward[0].split('comment "')[1].rstrip('"')}}
    assert nftables.owned_resources({"nftables": [*listing["nftables"], marked]})[0].attrs["accept_fwmark"] \
        == "0x1/0x3"


def chain(family: str, table: str, name: str, policy: str, hook: str = "forward") -> dict[str, object]:
    return {"chain": {"family": family, "table": table, "name": name, "handle": 1, "type": "filter",
                      "hook": hook, "prio": 0, "policy": policy}}


def test_coexistence_notes_name_the_chain_that_drops() -> None:
    listing = {"nftables": [
        {"metainfo": {"version": "1.1.3"}},
        chain("inet", "filter", "forward", "drop"),
        chain("ip", "filter", "FORWARD", "drop"),  # iptables-nft: netctl's own iptables backend
        chain("inet", "netctl", "forward", "drop"),  # ours: never a note
        chain("inet", "filter", "input", "drop", hook="input"),  # not forwarded traffic
        chain("inet", "open", "forward", "accept"),
        chain("inet", "firewalld", "filter_FORWARD", "accept"),
    ]}
    notes = foreign_drops(listing)
    assert len(notes) == 3, notes
    assert notes[0].startswith("table inet filter chain forward (hook forward, priority 0) has policy drop")
    assert "iptables -P FORWARD ACCEPT" in notes[1]
    assert "firewalld" in notes[2] and "trusted" in notes[2]


def nfnl(msg_type: int, table: str) -> bytes:
    name = table.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(name), 1) + name
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BBH", 1, 0, 0) + attr
    return struct.pack("=IHHII", 16 + len(body), msg_type, 0, 0, 0) + body


def test_nftables_notifications_name_their_table() -> None:
    new_table, new_rule, del_set = (10 << 8) | 0, (10 << 8) | 6, (10 << 8) | 11
    data = nfnl(new_table, "netctl") + nfnl(new_rule, "filter") + nfnl(del_set, "mine")
    assert list(nftables_tables(data)) == ["netctl", "filter", "mine"]
    assert list(nftables_tables(nfnl(3 << 8, "x"))) == []  # another subsystem
    assert list(nftables_tables(data[:20])) == []  # truncated


def regenerate() -> None:
    """Apply TOPOLOGY's script in a throwaway network namespace and keep what nft prints."""
    script = nftables.script([Action(Op.CREATE, r) for r in wanted(topology())])
    run = subprocess.run(["unshare", "--net", "sh", "-c", "nft -f - && nft -j list table inet netctl"],
                         input=script, capture_output=True, text=True, check=True)
    listing = json.loads(run.stdout)
    GOLDEN.write_text(json.dumps(listing, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    regenerate()
