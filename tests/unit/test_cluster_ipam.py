"""Cluster IPAM against a real etcd: picks are Docker's, claims never collide, even when
several hosts allocate at the same moment, round after round."""

from __future__ import annotations

import ipaddress
import itertools
import threading

import pytest

from controller.cluster import ipam, keys
from controller.cluster.etcd import Etcd
from controller.cluster.server import EtcdServer, available
from controller.cluster.state import EndpointRecord, HostRecord, NetworkRecord, Snapshot
from controller.drivers.overlay import Peer

pytestmark = pytest.mark.skipif(not available(), reason="etcd is not installed")

_ids = (f"{i:064x}" for i in itertools.count(1))


def new_id() -> str:
    return next(_ids)


def make(client: Etcd, name: str, explicit: str | None = None, avoid: tuple[str, ...] = ()) -> NetworkRecord:
    record, _ = ipam.ensure_network(
        client, ipam.read(client), name, body={"spec": {"driver": "overlay"}}, source="test",
        explicit_subnet=explicit, avoid=[ipaddress.ip_network(a) for a in avoid],
        new_id=new_id, now="2026-01-01T00:00:00Z", publish_body=False,
    )
    return record


def addresses(client: Etcd, host: str, record: NetworkRecord, wanted: dict[str, str | None],
              kept: dict[str, str] | None = None) -> dict[str, str]:
    out, _ = ipam.ensure_addresses(
        client, ipam.read(client), host, ipam.AddressRequest(record, wanted, kept or {})
    )
    return out


def test_networks_get_vnis_from_4096_and_subnets_from_the_global_pool(client: Etcd) -> None:
    a, b = make(client, "a"), make(client, "b")
    assert (a.vni, a.subnet) == (4096, "10.0.0.0/24")
    assert (b.vni, b.subnet) == (4097, "10.0.1.0/24")
    assert make(client, "a") == a  # existing: the same record, nothing new claimed
    # Every host's local networks and routes (published in its record) are avoided, and
    # whatever this host's caller adds.
    client.put(keys.host("h9"), HostRecord("h9", "192.0.2.9", ("10.0.2.0/23",)).encode())
    assert make(client, "c").subnet == "10.0.4.0/24"
    assert make(client, "d", avoid=("10.0.5.0/24",)).subnet == "10.0.6.0/24"
    with pytest.raises(ipam.ClusterConflict, match=r"overlaps 10\.0\.0\.0/24"):
        make(client, "e", explicit="10.0.0.128/25")
    with pytest.raises(ipam.ClusterConflict, match="exists in the cluster with subnet"):
        make(client, "a", explicit="10.9.0.0/24")
    assert make(client, "f", explicit="10.99.0.0/16").subnet == "10.99.0.0/16"


def test_addresses_lowest_first_static_kept_and_released(client: Etcd) -> None:
    net = make(client, "n")
    got = addresses(client, "h1", net, {"x": None, "y": None})
    assert got == {"x": "10.0.0.2", "y": "10.0.0.3"}  # .0 network, .1 gateway
    assert addresses(client, "h1", net, {"x": None, "y": None}) == got  # stable
    assert addresses(client, "h2", net, {"z": "10.0.0.9"}) == {"z": "10.0.0.9"}
    with pytest.raises(ipam.ClusterConflict, match="in use by container z on host h2"):
        addresses(client, "h1", net, {"w": "10.0.0.9"})
    # An address kept in the local store comes back if nobody took it meanwhile.
    assert addresses(client, "h3", net, {"k": None}, kept={"k": "10.0.0.50"}) == {"k": "10.0.0.50"}
    # Release gives back only what the host no longer uses, never another host's.
    assert ipam.release(client, ipam.read(client), "h1", {("n", "10.0.0.2")}) == 1
    held = {kv.key.rsplit("/", 1)[1] for kv in client.get_prefix(keys.address_prefix("n")).kvs}
    assert held == {"10.0.0.2", "10.0.0.9", "10.0.0.50"}


def test_concurrent_hosts_never_share_an_address_over_many_rounds(server: EtcdServer, client: Etcd) -> None:
    net = make(client, "busy")
    hosts, per_host, rounds = 4, 3, 15
    results: dict[tuple[str, str], str] = {}
    lock = threading.Lock()
    for r in range(rounds):
        barrier = threading.Barrier(hosts)
        errors: list[BaseException] = []

        def host(i: int, r: int = r, barrier: threading.Barrier = barrier,
                 errors: list[BaseException] = errors) -> None:
            try:
                with server.client() as c:
                    wanted: dict[str, str | None] = {f"r{r}c{k}": None for k in range(per_host)}
                    snap = ipam.read(c)
                    barrier.wait()  # everybody read the same state: maximal contention
                    got, _ = ipam.ensure_addresses(c, snap, f"h{i}", ipam.AddressRequest(net, wanted, {}))
                with lock:
                    results.update({(f"h{i}", k): v for k, v in got.items()})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=host, args=(i,)) for i in range(hosts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
    assert len(results) == hosts * per_host * rounds
    assert len(set(results.values())) == len(results), "an address handed out twice"
    held = client.get_prefix(keys.address_prefix("busy")).kvs
    assert sorted(kv.key.rsplit("/", 1)[1] for kv in held) == sorted(results.values())


def test_concurrent_network_creation_gives_distinct_vnis_and_subnets(
    server: EtcdServer, client: Etcd
) -> None:
    made: list[NetworkRecord] = []
    for r in range(5):
        barrier = threading.Barrier(4)

        def create(i: int, r: int = r, barrier: threading.Barrier = barrier) -> None:
            with server.client() as c:
                snap = ipam.read(c)
                barrier.wait()
                record, _ = ipam.ensure_network(
                    c, snap, f"net{r}-{i}", body={}, source="", explicit_subnet=None, avoid=[],
                    new_id=new_id, now="", publish_body=False,
                )
                made.append(record)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(made) == 20
    assert len({m.vni for m in made}) == len({m.subnet for m in made}) == len({m.id for m in made}) == 20
    assert min(m.vni for m in made) == 4096


def test_remove_network_refused_while_a_live_host_uses_it(client: Etcd) -> None:
    net = make(client, "gone")
    addresses(client, "h2", net, {"web": None})
    client.put(keys.endpoint("gone", "h2", "web"), EndpointRecord("gone", "h2", "web", "10.0.0.2",
                                                                   "02:42:0a:00:00:02", "h2").encode())
    lease = client.grant(30)
    client.put(keys.alive("h2"), "{}", lease=lease)
    with pytest.raises(ipam.ClusterConflict, match="web on host h2"):
        ipam.remove_network(client, ipam.read(client), "gone", "h1")
    client.revoke(lease)  # h2 died: its endpoints no longer hold the network
    assert ipam.remove_network(client, ipam.read(client), "gone", "h1")
    left = [kv.key for kv in client.get_prefix(keys.ROOT).kvs if "gone" in kv.key or "4096" in kv.key]
    assert left == []
    assert make(client, "again").vni == 4096  # the VNI and subnet are free again


def test_snapshot_peers_are_the_live_other_hosts(client: Etcd) -> None:
    for host, ip in (("h1", "10.0.0.2"), ("h2", "10.0.0.3"), ("h3", "10.0.0.4")):
        mac = "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        client.put(keys.endpoint("n", host, "c"), EndpointRecord("n", host, "c", ip, mac, host).encode())
        client.put(keys.host(host), HostRecord(host, f"192.0.2.{host[1]}").encode())
    lease = client.grant(30)
    client.put(keys.alive("h1"), "{}", lease=lease)
    client.put(keys.alive("h2"), "{}", lease=lease)
    snap: Snapshot = ipam.read(client)
    assert snap.peers("n", "h1") == (Peer("10.0.0.3", "02:42:0a:00:00:03", "192.0.2.2"),)
    assert {p.ip for p in snap.peers("n", "h3")} == {"10.0.0.2", "10.0.0.3"}
    assert snap.peers("other", "h1") == ()
