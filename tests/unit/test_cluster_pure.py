"""The cluster layer's pure parts: options, records, picks, probes, preflight messages, and
how the cluster's networks join a host's documents."""

from __future__ import annotations

import ipaddress

import pytest

from controller.cluster import config, ipam, keys, probe
from controller.cluster.etcd import KeyValue
from controller.cluster.session import CLUSTER_ORIGIN, ClusterSession, check_mtu
from controller.cluster.state import AddressRecord, HostRecord, NetworkRecord, Snapshot, dumps
from controller.errors import ConflictError, UserError
from controller.kernel.netns import Sockets
from controller.model import Document, NetworkSpec, Source


def test_cluster_options_as_docker_took_them() -> None:
    c = config.parse("etcd://10.0.0.1:2379,10.0.0.2", "10.200.0.11:2376", ["discovery.ttl=5"])
    assert c.endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert c.advertise == "10.200.0.11" and c.ttl == 5 and c.ssl_context() is None
    tls = config.parse("etcd://e:2379", "eth0", ["kv.cacertfile=/ca.pem"])
    assert tls.endpoints == ("https://e:2379",) and tls.cacert == "/ca.pem" and tls.advertise == "eth0"
    assert config.parse("unix:///tmp/x.sock", "1.2.3.4").endpoints == ("unix:///tmp/x.sock",)
    for store, advertise, opts, message in (
        ("consul://x:8500", "1.2.3.4", [], "only etcd"),
        ("etcd://", "1.2.3.4", [], "no HOST:PORT"),
        ("etcd://x", None, [], "--advertise-address is required"),
        ("etcd://x", "1.2.3.4", ["nope"], "KEY=VALUE"),
        ("etcd://x", "1.2.3.4", ["kv.path=/x"], "unknown"),
        ("etcd://x", "1.2.3.4", ["discovery.ttl=1"], "at least 2"),
    ):
        with pytest.raises(UserError, match=message):
            config.parse(store, advertise, opts)


def kv(key: str, value: object) -> KeyValue:
    raw = value if isinstance(value, bytes) else dumps(value)
    return KeyValue(key, raw, mod_revision=7)


def test_snapshot_parses_records_and_skips_damage() -> None:
    net = NetworkRecord("ov", "f" * 64, "now", 4096, "10.0.0.0/24", {"spec": {}}, "h1:a.yaml")
    snap = Snapshot.parse([
        KeyValue(keys.network("ov"), net.encode()),
        kv(keys.address("ov", "10.0.0.2"), {"host": "h1", "container": "web"}),
        kv(keys.endpoint("ov", "h1", "web"), {"ip": "10.0.0.2", "mac": "02:42:0a:00:00:02", "vtep": "x"}),
        kv(keys.host("h1"), {"vtep": "192.0.2.1", "subnets": ["172.17.0.0/16"]}),
        kv(keys.alive("h1"), {"vtep": "192.0.2.1"}),
        KeyValue(keys.vni(4096), b"ov"),
        KeyValue(keys.subnet("10.0.0.0/24"), b"ov"),
        KeyValue(keys.network("broken"), b"{not json"),
        kv(keys.IPAM + "x", {"a": 1}),  # not NET/IP: skipped
    ], revision=9)
    assert snap.networks == {"ov": net} and snap.network_by_id("f" * 64) == net
    assert snap.addresses["ov"]["10.0.0.2"] == AddressRecord("ov", "10.0.0.2", "h1", "web")
    assert snap.hosts["h1"] == HostRecord("h1", "192.0.2.1", ("172.17.0.0/16",))
    assert snap.alive == {"h1"} and snap.vnis == {4096: "ov"} and snap.subnets == {"10.0.0.0/24": "ov"}
    assert snap.revision == 9 and snap.revisions[keys.address("ov", "10.0.0.2")] == 7


def request(**kw: object) -> ipam.AddressRequest:
    net = NetworkRecord("ov", "f" * 64, "", 4096, str(kw.pop("subnet", "10.0.0.0/24")))
    return ipam.AddressRequest(net, **kw)  # type: ignore[arg-type]


def taken(*pairs: tuple[str, str, str]) -> Snapshot:
    return Snapshot(addresses={"ov": {ip: AddressRecord("ov", ip, h, c) for ip, h, c in pairs}})


def test_address_picks() -> None:
    snap = taken(("10.0.0.2", "h2", "x"), ("10.0.0.4", "h1", "old"))
    wanted: dict[str, str | None] = {"a": None, "old": None, "b": None}
    out, claims = ipam.pick_addresses(snap, "h1", request(wanted=wanted, kept={}))
    assert out == {"a": "10.0.0.3", "b": "10.0.0.5", "old": "10.0.0.4"}
    assert claims == {"10.0.0.3": "a", "10.0.0.5": "b"}  # "old" is ours already
    # ipRange and aux addresses, as Docker's IPAM.
    out, _ = ipam.pick_addresses(Snapshot(), "h1", request(
        wanted={"a": None}, kept={}, ip_range="10.0.0.128/25", aux=("10.0.0.128",)))
    assert out == {"a": "10.0.0.129"}
    # A kept address taken meanwhile by another host is not stolen.
    out, _ = ipam.pick_addresses(snap, "h1", request(wanted={"k": None}, kept={"k": "10.0.0.2"}))
    assert out == {"k": "10.0.0.3"}
    with pytest.raises(ipam.ClusterConflict, match="in use by container x on host h2"):
        ipam.pick_addresses(snap, "h1", request(wanted={"s": "10.0.0.2"}, kept={}))
    full = Snapshot(addresses={"ov": {f"10.0.0.{i}": AddressRecord("ov", f"10.0.0.{i}", "h", str(i))
                                      for i in range(2, 7)}})
    with pytest.raises(ipam.ipam.PoolExhausted):
        ipam.pick_addresses(full, "h1", request(wanted={"z": None}, kept={}, subnet="10.0.0.0/29"))


def test_vni_and_subnet_picks() -> None:
    snap = Snapshot(vnis={4096: "a", 4097: "b", 4099: "c"}, subnets={"10.0.0.0/24": "a"},
                    hosts={"h": HostRecord("h", "x", ("10.0.1.0/24",))})
    assert ipam.pick_vni(snap) == 4098
    assert ipam.pick_subnet(snap, [ipaddress.ip_network("10.0.2.0/23")]) == "10.0.4.0/24"


def test_probe_packets() -> None:
    data = probe.packet("abc123", "10.200.0.11")
    assert data[:8] == bytes.fromhex("08000000fffffe00")  # VXLAN flags I, the probe VNI
    assert probe.parse(data) == ("abc123", "10.200.0.11")
    assert probe.parse(bytes.fromhex("0800000000100000") + b"\0" * 20) is None  # real VXLAN traffic
    assert probe.parse(b"short") is None
    program, buffer = probe._bpf_only_probes()
    assert len(program) == 16 and len(buffer.raw) == 7 * 8


def test_mtu_preflight_says_what_breaks() -> None:
    ov = NetworkSpec("ov", "overlay")
    check_mtu(ov, "10.200.0.11", ("ul0", 1500))  # 1450 + 50 fits
    big = NetworkSpec("big", "overlay", options={"com.docker.network.driver.mtu": "1500"})
    with pytest.raises(UserError, match=r"1500 \+ 50 bytes of VXLAN headers = 1550 > 1500, the MTU of ul0"):
        check_mtu(big, "10.200.0.11", ("ul0", 1500))
    check_mtu(big, "10.200.0.11", ("ul0", 9000))
    with pytest.raises(UserError, match="not an address of this host"):
        check_mtu(ov, "10.200.0.99", None)


def doc(name: str, driver: str = "overlay", label: str = "") -> Document:
    body = {"apiVersion": "netctl/v1", "kind": "Network",
            "metadata": {"name": name, "labels": {"v": label} if label else {}},
            "spec": {"driver": driver}}
    return Document("Network", name, body, Source("local.yaml"))


class Offline(ClusterSession):
    """A session whose reads return a given snapshot (None: etcd unreachable)."""

    def __init__(self, snap: Snapshot | None) -> None:
        super().__init__(config.parse("unix:///nonexistent", "10.200.0.11"), "/nonexistent", Sockets())
        self._snap = snap

    def read(self) -> Snapshot | None:
        self.snapshot = self._snap
        return self._snap


def test_cluster_networks_join_the_hosts_documents() -> None:
    record = NetworkRecord("ov", "f" * 64, "now", 4096, "10.0.0.0/24", doc("ov", label="cluster").body)
    snap = Snapshot(networks={"ov": record})
    # A host that never applied it gets the cluster's copy, marked as coming from there.
    s = Offline(snap)
    out = s.documents([doc("local", "bridge")], {}, [])
    assert [d.name for d in out] == ["local", "ov"] and s.cluster_keys == {("Network", "ov")}
    assert out[1].body["metadata"]["labels"] == {"v": "cluster"}
    # A stale local copy loses to the cluster's; one applied just now wins (and is published).
    stale, fresh = doc("ov", label="old"), doc("ov", label="new")
    assert s.documents([stale], {}, [])[0].body["metadata"]["labels"] == {"v": "cluster"}
    assert s.documents([fresh], {}, [fresh])[0].body["metadata"]["labels"] == {"v": "new"}
    assert s.cluster_keys == {("Network", "ov")}  # the cluster's from now on
    # Removed from the cluster by another host: the cached copy goes too, whoever made it.
    cached = doc("gone")
    assert Offline(Snapshot()).documents([cached], {("Network", "gone"): CLUSTER_ORIGIN}, []) == []
    assert Offline(Snapshot()).documents([cached], {("Network", "gone"): "apply"}, []) == []
    # etcd unreachable: the cached copies are what this host knows.
    offline = Offline(None)
    assert offline.documents([cached], {("Network", "gone"): CLUSTER_ORIGIN}, []) == [cached]
    assert offline.cluster_keys == {("Network", "gone")}
    with pytest.raises(ConflictError, match="overlay network of that name exists"):
        s.documents([doc("ov", "bridge")], {}, [])
