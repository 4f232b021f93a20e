"""Cluster-wide allocation: network IDs, VNIs, subnets and addresses, claimed in etcd txns.

Every decision has two halves: a pure pick on a Snapshot (what is free, Docker's way:
lowest first) and a claim, one etcd transaction whose compares fail if anyone claimed the
same thing since the read. A failed claim reads again and picks again, so two hosts
allocating at the same moment never get the same address, VNI or subnet: one wins each
round, the others move on. `dry_run` callers use the picks without claiming.

    VNIs      from 4096 up (below are left for other users of VXLAN on the hosts)
    subnets   Docker's global pool 10.0.0.0/8 in /24s, avoiding every overlay subnet, every
              host's local networks and routes (published in their host records), and what
              the caller avoids; subnet claims bump one version key, so they are serialised
    addresses lowest free of the subnet (or ipRange), never the network, gateway,
              broadcast or aux addresses; a static address must be free or already ours
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

from controller import ipam
from controller.cluster import keys
from controller.cluster.etcd import Delete, Etcd, EtcdError, Op, Put, absent, unchanged, value_is
from controller.cluster.state import AddressRecord, NetworkRecord, Snapshot
from controller.errors import ConflictError
from controller.model import IPNetwork

VNI_FIRST = 4096
VNI_LAST = (1 << 24) - 1
MAX_ROUNDS = 60
TXN_OPS = 100  # etcd refuses transactions of more than 128 operations by default


class ClusterConflict(ConflictError):
    """The request contradicts what the cluster holds: the user must choose differently."""


class Contention(EtcdError):
    """Claims kept losing to other hosts: retry later."""


def read(client: Etcd) -> Snapshot:
    r = client.get_prefix(keys.ROOT)
    return Snapshot.parse(r.kvs, r.revision)


def _backoff(round_: int) -> None:
    time.sleep(random.uniform(0, 0.005 * min(round_ + 1, 8)))


# --------------------------------------------------------------------------- networks


def pick_vni(snap: Snapshot) -> int:
    for vni in range(VNI_FIRST, VNI_LAST + 1):
        if vni not in snap.vnis:
            return vni
    raise ipam.PoolExhausted("no free VNI left")


def pick_subnet(snap: Snapshot, avoid: Collection[IPNetwork]) -> str:
    """The first /24 of 10.0.0.0/8 that overlaps no overlay and no host's local network."""
    hosts = (s for h in snap.hosts.values() for s in h.subnets)
    taken = [ipaddress.ip_network(s, strict=False)
             for s in (*snap.subnets, *(n.subnet for n in snap.networks.values()), *hosts)]
    return str(ipam.pick_subnet(ipam.default_global_pools(), [*taken, *avoid]))


def plan_network(
    snap: Snapshot,
    name: str,
    *,
    body: Mapping[str, object],
    source: str,
    explicit_subnet: str | None,
    avoid: Collection[IPNetwork],
    new_id: Callable[[], str],
    now: str,
) -> NetworkRecord:
    """The record for a network not in the cluster yet: a fresh ID, the lowest free VNI, the
    explicit subnet (checked against the other overlays) or the next free pool subnet."""
    if explicit_subnet is not None:
        subnet = ipaddress.ip_network(explicit_subnet, strict=False)
        for other in snap.networks.values():
            if ipaddress.ip_network(other.subnet).overlaps(subnet):
                raise ClusterConflict(
                    f"network {name}: subnet {subnet} overlaps {other.subnet} of overlay network {other.name}"
                )
        cidr = str(subnet)
    else:
        cidr = pick_subnet(snap, avoid)
    return NetworkRecord(name, new_id(), now, pick_vni(snap), cidr, dict(body), source)


def claim_network(client: Etcd, snap: Snapshot, record: NetworkRecord) -> bool:
    """Create the network with its VNI and subnet at once, if nobody did in between."""
    version = snap.revisions.get(keys.SUBNETS_VERSION, 0)
    result = client.txn(
        [
            absent(keys.network(record.name)),
            absent(keys.vni(record.vni)),
            absent(keys.subnet(record.subnet)),
            unchanged(keys.SUBNETS_VERSION, version),
        ],
        [
            Put(keys.network(record.name), record.encode()),
            Put(keys.vni(record.vni), record.name.encode()),
            Put(keys.subnet(record.subnet), record.name.encode()),
            Put(keys.SUBNETS_VERSION, record.name.encode()),
        ],
    )
    return result.succeeded


def ensure_network(
    client: Etcd,
    snap: Snapshot,
    name: str,
    *,
    body: Mapping[str, object],
    source: str,
    explicit_subnet: str | None,
    avoid: Collection[IPNetwork],
    new_id: Callable[[], str],
    now: str,
    publish_body: bool,
) -> tuple[NetworkRecord, Snapshot]:
    """The cluster's record of network `name`, created if missing. `publish_body`: this
    host applied the manifest just now, so the cluster's copy is updated to it (the ID, VNI
    and subnet stay: they are what every host already uses)."""
    for round_ in range(MAX_ROUNDS):
        existing = snap.networks.get(name)
        if existing is not None:
            if explicit_subnet is not None and (
                ipaddress.ip_network(explicit_subnet, strict=False) != ipaddress.ip_network(existing.subnet)
            ):
                raise ClusterConflict(
                    f"overlay network {name} exists in the cluster with subnet {existing.subnet}; "
                    f"remove it first to change its subnet to {explicit_subnet}"
                )
            if not publish_body or dict(existing.body) == dict(body):
                return existing, snap
            updated = replace(existing, body=dict(body), source=source)
            key = keys.network(name)
            guard = unchanged(key, snap.revisions.get(key, 0))
            if client.txn([guard], [Put(key, updated.encode())]).succeeded:
                return updated, snap
        else:
            record = plan_network(snap, name, body=body, source=source, explicit_subnet=explicit_subnet,
                                  avoid=avoid, new_id=new_id, now=now)
            if claim_network(client, snap, record):
                return record, snap
        _backoff(round_)
        snap = read(client)
    raise Contention(f"network {name}: could not claim a VNI and subnet in {MAX_ROUNDS} rounds")


def remove_network(client: Etcd, snap: Snapshot, name: str, me: str) -> bool:
    """Remove an overlay network from the cluster, with its VNI, subnet, addresses and the
    endpoints of dead hosts. Refused while a live host other than `me` has endpoints on it
    (the caller checks its own). False when the cluster has no such network."""
    record = snap.networks.get(name)
    if record is None:
        return False
    users = sorted({f"{e.container} on host {e.host}" for e in snap.endpoints
                    if e.network == name and e.host != me and e.host in snap.alive})
    if users:
        raise ClusterConflict(
            f"error while removing network: network {name} id {record.id} has active endpoints "
            f"({', '.join(users)})"
        )
    key = keys.network(name)
    ok = client.txn(
        [unchanged(key, snap.revisions.get(key, 0))],
        [
            Delete(key),
            Delete(keys.vni(record.vni)),
            Delete(keys.subnet(record.subnet)),
            Delete(keys.address_prefix(name), prefix=True),
            Delete(keys.endpoint_prefix(name), prefix=True),
            Put(keys.SUBNETS_VERSION, b"-" + name.encode()),
        ],
    ).succeeded
    if not ok:
        raise Contention(f"network {name} changed while being removed; try again")
    return True


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class AddressRequest:
    """What one host needs on one overlay network: container -> static address or None;
    `kept`: addresses it used before (from its local store), kept when still free."""

    network: NetworkRecord
    wanted: Mapping[str, str | None]
    kept: Mapping[str, str]
    gateway: str | None = None
    ip_range: str | None = None
    aux: tuple[str, ...] = ()


def pick_addresses(
    snap: Snapshot, host: str, req: AddressRequest
) -> tuple[dict[str, str], dict[str, str]]:
    """(container -> address for every wanted container, address -> container for those
    that must be claimed now)."""
    name = req.network.name
    subnet = ipaddress.ip_network(req.network.subnet)
    ip_range = ipaddress.ip_network(req.ip_range, strict=False) if req.ip_range else None
    gateway = ipaddress.ip_address(req.gateway) if req.gateway else ipam.first_host(subnet)
    current = dict(snap.addresses.get(name, {}))
    mine = {r.container: ip for ip, r in sorted(current.items(), key=lambda i: _ip_key(i[0]))
            if r.host == host and ipaddress.ip_address(ip) in subnet}
    unavailable = {ipaddress.ip_address(ip) for ip in current} | ipam.reserved(subnet, gateway, req.aux)
    out: dict[str, str] = {}
    claims: dict[str, str] = {}

    def take(container: str, ip: str) -> None:
        out[container] = ip
        unavailable.add(ipaddress.ip_address(ip))
        if ip not in current:
            claims[ip] = container

    for container, static in sorted(req.wanted.items()):
        if not static:
            continue
        record = current.get(static)
        if record is not None and not record.owned_by(host, container):
            raise ClusterConflict(
                f"address {static} on overlay network {name} is in use by container "
                f"{record.container} on host {record.host}"
            )
        out[container] = static
        if record is None:
            claims[static] = container
        unavailable.add(ipaddress.ip_address(static))
    pool = ip_range or subnet
    for container in sorted(c for c, s in req.wanted.items() if not s):
        ours = mine.get(container)
        if ours is not None and ipaddress.ip_address(ours) in pool:
            out[container] = ours
            continue
        earlier = req.kept.get(container)
        if earlier is not None and earlier not in current:
            address = ipaddress.ip_address(earlier)
            if address in pool and address in subnet and address not in unavailable:
                take(container, earlier)
                continue
        take(container, str(ipam.allocate(subnet, ip_range, unavailable)))
    return out, claims


def _ip_key(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


def claim_addresses(client: Etcd, network: str, host: str, claims: Mapping[str, str]) -> bool:
    """Claim every address at once: all or nothing."""
    if not claims:
        return True
    items = sorted(claims.items())
    for start in range(0, len(items), TXN_OPS):
        chunk = items[start:start + TXN_OPS]
        ok = client.txn(
            [absent(keys.address(network, ip)) for ip, _ in chunk],
            [Put(keys.address(network, ip), AddressRecord(network, ip, host, c).encode()) for ip, c in chunk],
        ).succeeded
        if not ok:
            return False
    return True


def ensure_addresses(
    client: Etcd, snap: Snapshot, host: str, req: AddressRequest
) -> tuple[dict[str, str], Snapshot]:
    for round_ in range(MAX_ROUNDS):
        out, claims = pick_addresses(snap, host, req)
        if claim_addresses(client, req.network.name, host, claims):
            return out, snap
        _backoff(round_)
        snap = _with_addresses(client, snap, req.network.name)
    raise Contention(f"network {req.network.name}: could not claim addresses in {MAX_ROUNDS} rounds")


def _with_addresses(client: Etcd, snap: Snapshot, network: str) -> Snapshot:
    """`snap` with the network's addresses read again (cheaper than reading everything)."""
    r = client.get_prefix(keys.address_prefix(network))
    fresh = Snapshot.parse(r.kvs, r.revision)
    addresses = {**snap.addresses, network: fresh.addresses.get(network, {})}
    return replace(snap, addresses=addresses, revisions={**snap.revisions, **fresh.revisions})


def release(client: Etcd, snap: Snapshot, host: str, keep: Collection[tuple[str, str]]) -> int:
    """Give back this host's addresses not in `keep` ((network, ip) pairs). Each delete is
    guarded by the value, so an address someone else holds now is never taken from them."""
    ops: list[tuple[str, bytes]] = []
    for net, by_ip in snap.addresses.items():
        for ip, record in by_ip.items():
            if record.host == host and (net, ip) not in keep:
                ops.append((keys.address(net, ip), record.encode()))
    done = 0
    for key, value in ops:
        deletes: list[Op] = [Delete(key)]
        if client.txn([value_is(key, value)], deletes).succeeded:
            done += 1
    return done
