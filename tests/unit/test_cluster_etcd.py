"""The etcd client against a real etcd (Debian's etcd-server), started by the test on unix
sockets in a temporary folder: no TCP port is opened anywhere."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from controller.cluster import etcd
from controller.cluster.etcd import Delete, Etcd, EtcdUnavailable, Get, Put, absent, unchanged, value_is
from controller.cluster.server import EtcdServer, available

pytestmark = pytest.mark.skipif(not available(), reason="etcd is not installed")


def test_prefix_end() -> None:
    assert etcd.prefix_end("/a/") == b"/a0"
    assert etcd.prefix_end("ab") == b"ac"
    assert etcd.prefix_end("") == b"\0"


def test_put_get_range_delete(client: Etcd) -> None:
    assert client.get("/x/missing") is None
    rev = client.put("/x/a", "1")
    client.put("/x/b", b"\x00\xff")
    client.put("/y/c", "3")
    kv = client.get("/x/a")
    assert kv is not None and kv.value == b"1" and kv.create_revision == kv.mod_revision == rev
    r = client.get_prefix("/x/")
    assert [(k.key, k.value) for k in r.kvs] == [("/x/a", b"1"), ("/x/b", b"\x00\xff")]
    assert r.revision >= rev
    assert client.delete("/x/", prefix=True) == 2
    assert client.get_prefix("/x/").kvs == ()
    assert client.get("/y/c") is not None


def test_txn_create_if_absent_is_atomic(client: Etcd) -> None:
    first = client.txn([absent("/k")], [Put("/k", b"mine")], [Get("/k")])
    second = client.txn([absent("/k")], [Put("/k", b"theirs")], [Get("/k")])
    assert first.succeeded and not second.succeeded
    assert second.ranges[0][0].value == b"mine"
    kv = client.get("/k")
    assert kv is not None
    # Compare-and-swap on the mod revision: a writer that read an old version loses.
    assert client.txn([unchanged("/k", kv.mod_revision)], [Put("/k", b"v2")]).succeeded
    assert not client.txn([unchanged("/k", kv.mod_revision)], [Put("/k", b"v3")]).succeeded
    assert client.txn([value_is("/k", b"v2")], [Delete("/k")]).succeeded
    assert client.get("/k") is None


def test_concurrent_claims_have_exactly_one_winner(server: EtcdServer, client: Etcd) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        with server.client() as c:
            barrier.wait()
            if c.txn([absent("/claim")], [Put("/claim", str(i).encode())]).succeeded:
                winners.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    kv = client.get("/claim")
    assert kv is not None and kv.value == str(winners[0]).encode()


def test_lease_keepalive_expiry_and_revoke(client: Etcd) -> None:
    lease = client.grant(2)
    client.put("/alive/a", "1", lease=lease)
    assert client.get("/alive/a").lease == lease  # type: ignore[union-attr]
    for _ in range(3):  # kept alive past its TTL
        time.sleep(1)
        assert client.keepalive(lease) == 2
    assert client.get("/alive/a") is not None
    deadline = time.monotonic() + 8
    while client.get("/alive/a") is not None:  # no keepalive: gone within the TTL (+ etcd's tick)
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.time_to_live(lease) == -1
    assert client.keepalive(lease) == 0
    other = client.grant(30)
    client.put("/alive/b", "1", lease=other)
    client.revoke(other)
    assert client.get("/alive/b") is None


def test_watch_sees_puts_and_deletes_in_order_and_stops_on_close(client: Etcd) -> None:
    start = client.get_prefix("/w/").revision + 1
    watch = client.watch("/w/", start)
    got: list[tuple[str, str, bytes]] = []
    done = threading.Event()

    def read() -> None:
        for batch in watch:
            got.extend((e.type, e.kv.key, e.kv.value) for e in batch.events)
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    client.put("/w/1", "a")
    client.put("/elsewhere", "x")
    client.put("/w/1", "b")
    client.delete("/w/1")
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    watch.close()
    assert done.wait(5)
    reader.join()
    assert got == [("PUT", "/w/1", b"a"), ("PUT", "/w/1", b"b"), ("DELETE", "/w/1", b"")]


def test_watch_from_history(client: Etcd) -> None:
    first = client.put("/h/1", "a")
    client.put("/h/2", "b")
    watch = client.watch("/h/", first)  # events that happened before the watch was made
    batches = iter(watch)
    seen: list[str] = []
    while len(seen) < 2:
        seen.extend(e.kv.key for e in next(batches).events)
    watch.close()
    assert seen == ["/h/1", "/h/2"]


def test_watch_of_compacted_history_says_so(client: Etcd) -> None:
    old = client.put("/c/1", "a")
    rev = client.put("/c/1", "b")
    client.call("/v3/kv/compaction", {"revision": str(rev), "physical": True})
    watch = client.watch("/c/", old)
    with pytest.raises(etcd.WatchCompacted):
        for _ in watch:
            pass


def test_unavailable_and_failover(server: EtcdServer, tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/nobody.sock"
    with Etcd([dead], timeout=0.5) as c, pytest.raises(EtcdUnavailable, match=r"nobody\.sock"):
        c.get("/x")
    with Etcd([dead, server.client_url], timeout=0.5) as c:  # the second member answers
        c.put("/failover", "ok")
        assert c.get("/failover") is not None
    with Etcd(["ftp://example"], timeout=0.5) as c, pytest.raises(EtcdUnavailable):
        c.get("/x")


def test_client_reconnects_after_etcd_restarts(server: EtcdServer, client: Etcd) -> None:
    client.put("/r", "before")
    server.stop()
    try:
        with pytest.raises(EtcdUnavailable):
            client.get("/r")
    finally:
        server.start()
    kv = client.get("/r")  # the data survived, the client found its way back
    assert kv is not None and kv.value == b"before"

