"""The cluster's state as values: etcd keys and values -> Snapshot (pure).

Records are small frozen dataclasses that serialise to the JSON stored under keys.py's
layout. A Snapshot is what one read of `/netctl/` (or a watch kept up to date) says:
networks, addresses in use, endpoints, hosts and which hosts are alive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.cluster import keys
from controller.cluster.etcd import KeyValue
from controller.drivers.overlay import Peer


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class NetworkRecord:
    name: str
    id: str
    created: str
    vni: int
    subnet: str
    body: Mapping[str, Any] = field(default_factory=dict)  # the manifest, as applied
    source: str = ""  # "HOST:FILE:LINE" of the manifest that created or last changed it

    def encode(self) -> bytes:
        return dumps({**asdict(self), "body": dict(self.body)})

    @classmethod
    def decode(cls, raw: bytes) -> NetworkRecord:
        d = json.loads(raw)
        return cls(d["name"], d["id"], d["created"], int(d["vni"]), d["subnet"],
                   d.get("body", {}), d.get("source", ""))


@dataclass(frozen=True)
class AddressRecord:
    network: str
    ip: str
    host: str
    container: str

    def encode(self) -> bytes:
        return dumps({"host": self.host, "container": self.container})

    def owned_by(self, host: str, container: str) -> bool:
        return self.host == host and self.container == container


@dataclass(frozen=True, order=True)
class EndpointRecord:
    network: str
    host: str
    container: str
    ip: str
    mac: str
    vtep: str

    def encode(self) -> bytes:
        return dumps({"ip": self.ip, "mac": self.mac, "vtep": self.vtep})

    @property
    def key(self) -> str:
        return keys.endpoint(self.network, self.host, self.container)


@dataclass(frozen=True)
class HostRecord:
    name: str
    vtep: str
    subnets: tuple[str, ...] = ()  # its local networks and routes: overlays must avoid them

    def encode(self) -> bytes:
        return dumps({"vtep": self.vtep, "subnets": list(self.subnets)})


@dataclass(frozen=True)
class Snapshot:
    networks: Mapping[str, NetworkRecord] = field(default_factory=dict)
    addresses: Mapping[str, Mapping[str, AddressRecord]] = field(default_factory=dict)  # net -> ip
    endpoints: tuple[EndpointRecord, ...] = ()
    hosts: Mapping[str, HostRecord] = field(default_factory=dict)
    alive: frozenset[str] = frozenset()
    vnis: Mapping[int, str] = field(default_factory=dict)
    subnets: Mapping[str, str] = field(default_factory=dict)  # cidr -> network
    revisions: Mapping[str, int] = field(default_factory=dict)  # key -> mod revision
    revision: int = 0

    @classmethod
    def parse(cls, kvs: Iterable[KeyValue], revision: int) -> Snapshot:
        networks: dict[str, NetworkRecord] = {}
        addresses: dict[str, dict[str, AddressRecord]] = {}
        endpoints: list[EndpointRecord] = []
        hosts: dict[str, HostRecord] = {}
        alive: set[str] = set()
        vnis: dict[int, str] = {}
        subnets: dict[str, str] = {}
        revisions: dict[str, int] = {}
        for kv in kvs:
            revisions[kv.key] = kv.mod_revision
            try:
                _parse_one(kv, networks, addresses, endpoints, hosts, alive, vnis, subnets)
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # a foreign or damaged value is not ours to interpret
        return cls(networks, addresses, tuple(sorted(endpoints)), hosts, frozenset(alive),
                   vnis, subnets, revisions, revision)

    def network_by_id(self, network_id: str) -> NetworkRecord | None:
        return next((n for n in self.networks.values() if n.id == network_id), None)

    def remote_names(self, me: str) -> list[tuple[str, str, str]]:
        """(network, container, ip) of the endpoints on the other live hosts: the names the
        embedded DNS of this host answers for them (controller.dns.records.build)."""
        return [(e.network, e.container, e.ip) for e in self.endpoints
                if e.host != me and e.host in self.alive]

    def peers(self, network: str, me: str) -> tuple[Peer, ...]:
        """Endpoints of `network` on the other live hosts: what this host's VXLAN device must
        reach. A host's current address (its record) wins over the one an endpoint kept."""
        out = set()
        for e in self.endpoints:
            if e.network != network or e.host == me or e.host not in self.alive:
                continue
            host = self.hosts.get(e.host)
            out.add(Peer(e.ip, e.mac, host.vtep if host else e.vtep))
        return tuple(sorted(out))


def _parse_one(
    kv: KeyValue,
    networks: dict[str, NetworkRecord],
    addresses: dict[str, dict[str, AddressRecord]],
    endpoints: list[EndpointRecord],
    hosts: dict[str, HostRecord],
    alive: set[str],
    vnis: dict[int, str],
    subnets: dict[str, str],
) -> None:
    k = kv.key
    if k.startswith(keys.NETWORKS):
        record = NetworkRecord.decode(kv.value)
        networks[record.name] = record
    elif k.startswith(keys.IPAM):
        net, ip = keys.parts(k, keys.IPAM)
        d = kv.json()
        addresses.setdefault(net, {})[ip] = AddressRecord(net, ip, d["host"], d["container"])
    elif k.startswith(keys.ENDPOINTS):
        net, host, container = keys.parts(k, keys.ENDPOINTS)
        d = kv.json()
        endpoints.append(EndpointRecord(net, host, container, d["ip"], d["mac"], d["vtep"]))
    elif k.startswith(keys.HOSTS):
        (name,) = keys.parts(k, keys.HOSTS)
        d = kv.json()
        hosts[name] = HostRecord(name, d["vtep"], tuple(d.get("subnets", ())))
    elif k.startswith(keys.ALIVE):
        alive.add(keys.parts(k, keys.ALIVE)[0])
    elif k.startswith(keys.VNIS):
        vnis[int(keys.parts(k, keys.VNIS)[0])] = kv.value.decode()
    elif k.startswith(keys.SUBNETS):
        subnets[keys.subnet_of(k)] = kv.value.decode()
