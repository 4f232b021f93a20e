"""The pipeline's hook into the cluster store, for one command (see pipeline.Session).

    documents()  before build: the cluster's overlay networks join this host's documents
                 (a manifest applied here just now is published instead)
    allocate()   after build, before resolve: IDs, VNIs, subnets and addresses of overlay
                 networks are claimed in etcd and handed to resolve as Allocations, so
                 resolve stays pure and keeps them like any other earlier decision
    peer_resources()  the FDB and neighbour entries for remote endpoints, for the plan
    publish()    after execute: this host's record, its liveness, its endpoints; addresses
                 it no longer uses are given back only now, once the kernel let go of them

When etcd cannot be reached, local work goes on from what this host already knows (the
cluster's networks cached in its store and in `STATE/cluster/networks.json`, its own
addresses in the store); only a new cluster allocation fails, with that reason. Entries
for remote endpoints are then left exactly as they are, and the endpoints this host should
publish wait in `STATE/cluster/endpoints.json` for the agent to publish them.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

import structlog

from controller import drivers, load, names
from controller import ipam as local_ipam
from controller.cluster import ipam, keys
from controller.cluster.config import ClusterConfig
from controller.cluster.etcd import Delete, Etcd, EtcdError, Op, Put
from controller.cluster.lease import Liveness
from controller.cluster.state import EndpointRecord, HostRecord, NetworkRecord, Snapshot
from controller.cluster.underlay import check_mtu, resolve_advertise, underlay_of
from controller.drivers import overlay
from controller.errors import ApplyError, ConflictError, UserError
from controller.hooks import Hook
from controller.kernel.netns import Sockets
from controller.model import (
    Allocations,
    Document,
    IPNetwork,
    Kind,
    NetworkSpec,
    Observed,
    Resource,
    Source,
    Spec,
    Target,
)
from controller.resolve import HostFacts

log = structlog.get_logger("netctl.cluster")

CLUSTER_ORIGIN = "cluster"  # the origin recorded for documents that came from the cluster


def is_overlay(doc: Document) -> bool:
    return doc.kind == "Network" and drivers.is_global(load.network_spec(doc).driver)


def cluster_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "cluster")


def write_json(path: str, value: object) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class ClusterSession(Hook):
    """The cluster store as a pipeline hook: overlay documents in, IDs/VNIs/subnets/addresses
    claimed in etcd, remote endpoints' entries added, this host's endpoints published."""

    ORIGIN = CLUSTER_ORIGIN

    # ------------------------------------------------------------------ the hook

    def has_store(self) -> bool:
        return True

    def stored_elsewhere(self) -> set[tuple[str, str]]:
        return self.network_keys()

    def removing_networks(self, names_: Sequence[str]) -> None:
        self.remove_networks(names_)

    def origins(self) -> Mapping[tuple[str, str], str]:
        return dict.fromkeys(self.cluster_keys, self.ORIGIN)

    def remote_names(self) -> list[tuple[str, str, str]]:
        """Endpoints of overlay networks on the other live hosts, for the embedded DNS (none
        while the store is unreachable)."""
        return [] if self.snapshot is None else self.snapshot.remote_names(self.host)

    def verified(self, target: Target) -> None:
        self.publish(target)  # this host's endpoints, once the kernel has them

    def __init__(self, config: ClusterConfig, state_dir: str, sockets: Sockets) -> None:
        self.config = config
        self.state_dir = state_dir
        self.sockets = sockets
        self._client: Etcd | None = None
        self._host: str | None = None
        self.snapshot: Snapshot | None = None  # None: not read, or etcd unreachable
        self.unreachable: str | None = None
        self.cluster_keys: set[tuple[str, str]] = set()  # documents that came from the cluster
        self.records: dict[str, NetworkRecord] = {}
        self.facts = HostFacts()
        self.created: list[str] = []  # overlay networks this command created in the cluster

    @property
    def client(self) -> Etcd:
        if self._client is None:
            self._client = Etcd(self.config.endpoints, timeout=self.config.timeout,
                                ssl_context=self.config.ssl_context())
        return self._client

    @property
    def host(self) -> str:
        """This host's name in the cluster: its underlay address (unique, and its VTEP)."""
        if self._host is None:
            self._host = resolve_advertise(self.sockets, self.config.advertise)
        return self._host

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def read(self) -> Snapshot | None:
        try:
            self.snapshot = ipam.read(self.client)
            self.unreachable = None
            self._cache(self.snapshot.networks)
        except EtcdError as exc:
            self.snapshot = None
            self.unreachable = str(exc)
            log.warning("cluster store unreachable; going on with what this host knows",
                        error=str(exc))
        return self.snapshot

    def _cache(self, records: Mapping[str, NetworkRecord]) -> None:
        path = os.path.join(cluster_dir(self.state_dir), "networks.json")
        value = {n: {"id": r.id, "created": r.created, "vni": r.vni, "subnet": r.subnet}
                 for n, r in sorted(records.items())}
        if read_json(path) != value:
            write_json(path, value)

    def _cached(self) -> dict[str, NetworkRecord]:
        raw = read_json(os.path.join(cluster_dir(self.state_dir), "networks.json"))
        if not isinstance(raw, dict):
            return {}
        return {n: NetworkRecord(n, r["id"], r["created"], int(r["vni"]), r["subnet"])
                for n, r in raw.items()}

    # ------------------------------------------------------------------ before build

    def documents(
        self,
        documents: Sequence[Document],
        origins: Mapping[tuple[str, str], str],
        changed: Sequence[Document],
    ) -> list[Document]:
        """This host's documents with the cluster's overlay networks: the cluster's copy
        wins, except for a manifest applied here just now (published by allocate())."""
        snap = self.read()
        if snap is None:
            self.cluster_keys = {(d.kind, d.name) for d in documents
                                 if origins.get((d.kind, d.name)) == CLUSTER_ORIGIN}
            return self._with_gateway(list(documents))
        fresh = {(d.kind, d.name) for d in changed}
        out: list[Document] = []
        present: set[str] = set()
        self.cluster_keys = set()
        for d in documents:
            key = (d.kind, d.name)
            if d.kind == "Network":
                if d.name in snap.networks and not is_overlay(d):
                    raise ConflictError(
                        f"network {d.name}: an overlay network of that name exists in the cluster"
                    )
                if key not in fresh and (is_overlay(d) or origins.get(key) == CLUSTER_ORIGIN):
                    continue  # the cluster's copy (below), or gone from the cluster
                if is_overlay(d):  # applied just now: published by allocate(), the cluster's from now on
                    self.cluster_keys.add(key)
                present.add(d.name)
            out.append(d)
        for name, record in sorted(snap.networks.items()):
            if name not in present:
                out.append(Document("Network", name, dict(record.body),
                                    Source(f"etcd:{keys.network(name)}")))
                self.cluster_keys.add(("Network", name))
        return self._with_gateway(out)

    def _with_gateway(self, documents: list[Document]) -> list[Document]:
        """The gateway bridge exists while a container is on a non-internal overlay network
        (its document is netctl's own, marked as coming from the cluster layer)."""
        if any(d.kind == "Network" and d.name == overlay.GATEWAY_BRIDGE for d in documents):
            return documents
        exits = {d.name for d in documents if is_overlay(d) and not load.network_spec(d).internal}
        for d in documents:
            attached = load.container_spec(d).networks if d.kind == "Container" else ()
            if any(a.network in exits for a in attached):
                self.cluster_keys.add(("Network", overlay.GATEWAY_BRIDGE))
                gateway = Document("Network", overlay.GATEWAY_BRIDGE, overlay.gateway_bridge_body(),
                                   Source("netctl:overlay"))
                return [*documents, gateway]
        return documents

    def listing(
        self,
        documents: Sequence[Document],
        origins: Mapping[tuple[str, str], str],
        allocations: Allocations,
    ) -> tuple[list[Document], Allocations]:
        """For read-only commands (network ls): the documents with the cluster's networks,
        and their cluster-wide IDs."""
        docs = self.documents(documents, origins, [])
        records = self.snapshot.networks if self.snapshot is not None else self._cached()
        ids = dict(allocations.ids)
        created = dict(allocations.created)
        for name, r in records.items():
            ids[("network", name)] = r.id
            created[("network", name)] = r.created
        return docs, replace(allocations, ids=ids, created=created)

    # ------------------------------------------------------------------ after build

    def allocate(
        self,
        documents: Sequence[Document],
        changed: Sequence[Document],
        spec: Spec,
        allocations: Allocations,
        facts: HostFacts,
        now: str,
        dry_run: bool,
    ) -> tuple[Spec, Allocations]:
        self.facts = facts
        spec = overlay.with_gateway_bridge(spec)  # the way out, as Docker's docker_gwbridge
        overlays = [n for n in spec.networks if drivers.is_global(n.driver)]
        if not overlays:
            return spec, allocations
        for n in overlays:
            if n.enable_ipv6:
                raise UserError(f"network {n.name}: IPv6 on overlay networks is not supported yet")
            check_mtu(n, self.host, underlay_of(self.sockets, self.host))
        if self.snapshot is None:
            return self._offline(spec, allocations, overlays)
        snap = self.snapshot
        fresh = {d.name for d in changed if is_overlay(d)}
        bodies = {d.name: d for d in documents if d.kind == "Network"}
        # Other hosts' local subnets are in their records (ipam.pick_subnet avoids them).
        avoid = [*self._local_subnets(spec, allocations), *facts.routes]
        records: dict[str, NetworkRecord] = {}
        try:
            for n in overlays:
                doc = bodies[n.name]
                explicit = next((c.subnet for c in n.ipam if c.subnet), None)
                if dry_run and n.name not in snap.networks:  # what apply would pick, unclaimed
                    earlier = allocations.ids.get(("network", n.name)) or names.new_id()
                    records[n.name] = ipam.plan_network(
                        snap, n.name, body=doc.body, source="", explicit_subnet=explicit, avoid=avoid,
                        new_id=functools.partial(str, earlier), now=now,
                    )
                    continue
                existed = n.name in snap.networks
                records[n.name], snap = ipam.ensure_network(
                    self.client, snap, n.name, body=doc.body,
                    source=f"{self.host}:{doc.source}", explicit_subnet=explicit, avoid=avoid,
                    new_id=names.new_id, now=now, publish_body=n.name in fresh and not dry_run,
                )
                if not existed:
                    self.created.append(n.name)
            self._refuse_local_overlaps(spec, records)
            addresses = dict(allocations.addresses)
            for n in overlays:
                req = self._request(spec, n, records[n.name], allocations)
                if dry_run:
                    picked, _ = ipam.pick_addresses(snap, self.host, req)
                else:
                    picked, snap = ipam.ensure_addresses(self.client, snap, self.host, req)
                for container, ip in picked.items():
                    addresses[(n.name, container, 4)] = ip
        except (ipam.ClusterConflict, local_ipam.PoolExhausted) as exc:
            raise UserError(str(exc)) from exc
        except EtcdError as exc:
            raise ApplyError(f"cluster store: {exc}; nothing was changed") from exc
        self.snapshot = snap
        self.records = records
        if not dry_run:
            self._cache({**self._cached(), **records})
        return self._with_records(spec, allocations, records, addresses)

    def _offline(
        self, spec: Spec, allocations: Allocations, overlays: list[NetworkSpec]
    ) -> tuple[Spec, Allocations]:
        """etcd is unreachable: go on only if nothing new must be allocated."""
        cached = self._cached()
        missing = [n.name for n in overlays if n.name not in cached]
        missing += [
            f"an address for container {c.name} on {att.network}"
            for c in spec.containers for att in c.networks
            if att.network in {n.name for n in overlays} and not att.ipv4_address
            and (att.network, c.name, 4) not in allocations.addresses
        ]
        if missing:
            raise ApplyError(
                f"cluster store unreachable ({self.unreachable}): cannot allocate "
                f"{', '.join(missing)}; nothing was changed. Existing overlays keep working; "
                "retry when etcd is back"
            )
        records = {n.name: cached[n.name] for n in overlays}
        self.records = records
        return self._with_records(spec, allocations, records, dict(allocations.addresses))

    def _request(
        self, spec: Spec, n: NetworkSpec, record: NetworkRecord, allocations: Allocations
    ) -> ipam.AddressRequest:
        wanted: dict[str, str | None] = {}
        kept: dict[str, str] = {}
        for c in spec.containers:
            for att in c.networks:
                if att.network == n.name:
                    wanted[c.name] = att.ipv4_address
                    earlier = allocations.addresses.get((n.name, c.name, 4))
                    if earlier:
                        kept[c.name] = earlier
        config = next((c for c in n.ipam if c.subnet), None)
        return ipam.AddressRequest(
            record, wanted, kept,
            gateway=config.gateway if config else None,
            ip_range=config.ip_range if config else None,
            aux=tuple(config.aux_addresses.values()) if config else (),
        )

    def _local_subnets(self, spec: Spec, allocations: Allocations) -> list[IPNetwork]:
        out: list[IPNetwork] = []
        for n in spec.networks:
            if drivers.is_global(n.driver):
                continue
            out.extend(ipaddress.ip_network(c.subnet, strict=False) for c in n.ipam if c.subnet)
            if n.name in allocations.subnets:
                out.append(ipaddress.ip_network(allocations.subnets[n.name]))
        return out

    def _refuse_local_overlaps(self, spec: Spec, records: Mapping[str, NetworkRecord]) -> None:
        for n in spec.networks:
            if drivers.is_global(n.driver):
                continue
            for c in n.ipam:
                if not c.subnet:
                    continue
                mine = ipaddress.ip_network(c.subnet, strict=False)
                for r in records.values():
                    if mine.overlaps(ipaddress.ip_network(r.subnet)):
                        raise UserError(
                            f"network {n.name}: subnet {mine} overlaps {r.subnet} of overlay "
                            f"network {r.name}"
                        )

    @staticmethod
    def _with_records(
        spec: Spec,
        allocations: Allocations,
        records: Mapping[str, NetworkRecord],
        addresses: Mapping[tuple[str, str, int], str],
    ) -> tuple[Spec, Allocations]:
        ids = dict(allocations.ids)
        created = dict(allocations.created)
        subnets = dict(allocations.subnets)
        networks = []
        for n in spec.networks:
            r = records.get(n.name)
            if r is not None:
                ids[("network", n.name)] = r.id
                created[("network", n.name)] = r.created
                if not any(c.subnet for c in n.ipam):
                    subnets[n.name] = r.subnet
                n = replace(n, options={**n.options, overlay.VNI_OPTION: str(r.vni)})
            networks.append(n)
        return (
            replace(spec, networks=tuple(networks)),
            replace(allocations, ids=ids, created=created, subnets=subnets, addresses=addresses),
        )

    # ------------------------------------------------------------------ the plan

    def with_peers(
        self, target: Target, wanted: Sequence[Resource], seen: Observed
    ) -> tuple[tuple[Resource, ...], Observed]:
        """`wanted` plus the FDB and neighbour entries for the remote endpoints of every
        overlay network here. Without a snapshot (etcd unreachable) the entries are left out
        of both sides: the data plane keeps forwarding exactly as it did."""
        if self.snapshot is None:
            kept = tuple(r for r in seen.resources if r.kind not in (Kind.FDB, Kind.NEIGH))
            return tuple(wanted), Observed(kept)
        out = list(wanted)
        for n in target.networks:
            if drivers.is_global(n.driver):
                out.extend(overlay.peer_resources(n.id, self.snapshot.peers(n.name, self.host)))
        return tuple(out), seen

    # ------------------------------------------------------------------ removal

    def network_keys(self) -> set[tuple[str, str]]:
        snap = self.snapshot or self.read()
        return {("Network", n) for n in snap.networks} if snap is not None else set()

    def remove_networks(self, names_: Sequence[str]) -> None:
        """Remove overlay networks from the cluster (refused while live hosts use them)."""
        snap = self.snapshot or self.read()
        wanted = [n for n in names_ if snap is not None and n in snap.networks]
        if not wanted:
            return
        if snap is None:
            raise ApplyError(f"cluster store unreachable ({self.unreachable}): cannot remove "
                             f"overlay network(s) {', '.join(names_)}")
        try:
            for name in wanted:
                ipam.remove_network(self.client, snap, name, self.host)
        except ipam.ClusterConflict as exc:
            raise ConflictError(str(exc)) from exc
        except EtcdError as exc:
            raise ApplyError(f"cluster store: {exc}") from exc
        self.snapshot = None  # read again by documents()

    # ------------------------------------------------------------------ after execute

    def local_endpoints(self, target: Target) -> list[EndpointRecord]:
        overlays = {n.name for n in target.networks if drivers.is_global(n.driver)}
        return sorted(
            EndpointRecord(ep.network, self.host, c.name, str(ep.ipv4.ip), ep.mac, self.host)
            for c in target.containers if c.netns
            for ep in c.endpoints if ep.network in overlays and ep.ipv4 is not None
        )

    def publish(self, target: Target) -> None:
        desired = self.local_endpoints(target)
        subnets = sorted({str(s.subnet) for n in target.networks if not drivers.is_global(n.driver)
                          for s in n.subnets} | {str(r) for r in self.facts.routes})
        write_json(os.path.join(cluster_dir(self.state_dir), "endpoints.json"), {
            "host": self.host, "subnets": subnets,
            "endpoints": [{"network": e.network, "container": e.container, "ip": e.ip, "mac": e.mac}
                          for e in desired],
        })
        if self.snapshot is None and self.read() is None:
            log.warning("cluster store unreachable: this host's endpoints will be published by "
                        "`netctl overlay-agent` when it is back", error=self.unreachable)
            return
        try:
            publish(self.client, self.host, subnets, desired, self.config.ttl, self.state_dir)
            if self.created:  # preflight: can this host's tunnels reach every live peer?
                from controller.cluster.preflight import warn_unreachable

                warn_unreachable(self.client, ipam.read(self.client), self.host)
        except EtcdError as exc:
            log.warning("could not publish endpoints to the cluster store; the overlay agent "
                        "will retry", error=str(exc))


def publish(
    client: Etcd,
    host: str,
    subnets: Sequence[str],
    desired: Sequence[EndpointRecord],
    ttl: int,
    state_dir: str,
) -> None:
    """Make the cluster's view of this host match `desired` (shared with the agent): its
    record, its liveness, its endpoints; then give back the addresses it no longer uses."""
    snap = ipam.read(client)
    record = HostRecord(host, host, tuple(subnets))
    if snap.hosts.get(host) != record:
        client.put(keys.host(host), record.encode())
    Liveness(client, host, host, ttl, state_dir).ensure()
    have = {e.key: e for e in snap.endpoints if e.host == host}
    want = {e.key: e for e in desired}
    ops: list[Op] = [Put(k, e.encode()) for k, e in want.items() if have.get(k) != e]
    ops += [Delete(k) for k in have if k not in want]
    for start in range(0, len(ops), ipam.TXN_OPS):
        client.txn([], ops[start:start + ipam.TXN_OPS])
    ipam.release(client, snap, host, {(e.network, e.ip) for e in desired})
