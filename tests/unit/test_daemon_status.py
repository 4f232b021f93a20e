"""Status rows and drift classification (pure)."""

from __future__ import annotations

from pathlib import Path

from controller import resources
from controller.daemon.status import Round, StatusBook, describe, drift
from controller.model import Action, Change, Document, Op, Source, StatusRow
from controller.store import Store


def doc(kind: str, name: str, file: str = "/m/a.yaml", line: int = 1) -> Document:
    return Document(kind, name, {}, Source(file, line))


def test_drift_is_a_change_to_a_target_that_did_not_change() -> None:
    veth = resources.veth("veth1", master="br0", mtu=1500, alias="netctl:x", peer_netns="web",
                          peer_ifname="eth0")
    new_veth = resources.veth("veth2", master="br0", mtu=1500, alias="netctl:x", peer_netns="db",
                              peer_ifname="eth0")
    stray = resources.netns("stray")
    previous = {veth.key: veth}
    actions = [Action(Op.CREATE, veth), Action(Op.CREATE, new_veth), Action(Op.DELETE, stray)]
    assert drift(actions, previous) == [actions[0], actions[2]]
    assert drift(actions, {}) == []  # the first reconcile after startup: nothing to compare


def test_describe_is_short() -> None:
    bridge = resources.bridge("netctl0", 1500, "netctl:x", "02:42:00:00:00:01")
    assert describe(Action(Op.UPDATE, bridge, (Change("up", False, True),))) == (
        "~ bridge netctl0: up False -> True"
    )
    hosts = resources.file("/etc/netns/web/hosts", "x" * 200)
    assert describe(Action(Op.UPDATE, hosts, (Change("content", "y" * 200, "x" * 200),))) == (
        "~ file /etc/netns/web/hosts: content changed"
    )
    assert describe(Action(Op.CREATE, resources.route("web", "default", gateway="172.17.0.1", dev="eth0",
                                                      via_addr="172.17.0.2/16"))) == "+ route web/default"


def test_rows_only_change_for_objects_the_reconcile_covered() -> None:
    book = StatusBook([])
    docs = [(doc("Container", "web"), "controller:/m"), (doc("Container", "db"), "apply"),
            (doc("Network", "front", line=9), "controller:/m")]
    netns_of = {"web": "web", "db": "db"}
    put, drop = book.apply(Round("T1", 0.5, docs, None, netns_of))
    assert {(r.name, r.state, r.at, r.source) for r in put} == {
        ("web", "converged", "T1", "controller:/m/a.yaml:1"),
        ("db", "converged", "T1", "apply:/m/a.yaml:1"),
        ("front", "converged", "T1", "controller:/m/a.yaml:9"),
    }
    assert drop == []
    # A scoped reconcile of `web` only: db keeps its time; networks are always covered.
    put, _ = book.apply(Round("T2", 0.1, docs, {"web"}, netns_of,
                              repaired={("Container", "web"): ["+ veth veth1"]}))
    rows = {r.name: r for r in put}
    assert set(rows) == {"web", "front"}
    assert rows["web"].repaired == "T2" and rows["web"].reason == "+ veth veth1"
    # A later converged reconcile keeps the repair visible.
    put, _ = book.apply(Round("T3", 0.1, docs, None, netns_of))
    assert {r.name: r for r in put}["web"].reason == "+ veth veth1"


def test_failures_files_and_removal() -> None:
    book = StatusBook([StatusRow("Container", "gone", "converged")])
    docs = [(doc("Container", "web"), "controller:/m")]
    put, drop = book.apply(Round(
        "T1", 0.2, docs, None, {"web": "web"},
        failed={("Container", "web"): "/m/a.yaml:5 spec.networks: bad; last good state kept"},
        bad_files={"/m/a.yaml": ["/m/a.yaml:5 spec.networks: bad"]},
    ))
    rows = {(r.kind, r.name): r for r in put}
    assert rows[("Container", "web")].state == "failed"
    assert rows[("File", "/m/a.yaml")].reason == "/m/a.yaml:5 spec.networks: bad"
    assert drop == [("Container", "gone")]
    put, drop = book.apply(Round("T2", 0.2, docs, None, {"web": "web"}))
    assert drop == [("File", "/m/a.yaml")]
    assert [r.state for r in put] == ["converged"]


def test_an_older_state_directory_gets_the_new_status_columns(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("CREATE TABLE status (kind TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, "
               "reason TEXT NOT NULL, at TEXT NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (kind, name))")
    db.execute("INSERT INTO status VALUES ('Container', 'old', 'converged', '', 'T0', 1.0)")
    db.commit()
    db.close()
    store = Store(str(tmp_path))
    try:
        assert store.status_rows() == [StatusRow("Container", "old", "converged", "", "T0", 1.0)]
        store.record_status([("Container", "web", "converged", "")], "T1", 0.5)  # the old writer
        store.put_status([StatusRow("Network", "n", "failed", "bad", "T2", 0.1, "apply:/a.yaml:1")])
        assert store.status() == [("Container", "web", "converged", "", "T1", 0.5),
                                  ("Network", "n", "failed", "bad", "T2", 0.1)]
        store.drop_status([("Network", "n")])
        assert [r.name for r in store.status_rows()] == ["web"]
        Store(str(tmp_path)).close()  # opening it again migrates nothing twice
    finally:
        store.close()
