"""Preflight: what makes overlays fail silently in the field, checked and said plainly.

- the advertise address is really this host's (else replies come back to nowhere);
- the underlay MTU carries the overlay MTU plus 50 bytes of VXLAN (else ping works and TCP
  stalls: flannel-io/flannel#1279);
- UDP 4789 reaches every live peer (else each side sees the other's endpoints and nothing
  passes: flannel-io/flannel#2388).

`netctl overlay preflight` runs them all; `netctl apply` refuses an MTU that cannot work
and warns about peers that cannot be reached when it creates an overlay network.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from controller import load
from controller.cluster import ipam
from controller.cluster.config import ClusterConfig
from controller.cluster.etcd import Etcd, EtcdError
from controller.cluster.probe import probe
from controller.cluster.state import Snapshot
from controller.cluster.underlay import check_mtu, resolve_advertise, underlay_of
from controller.errors import UserError
from controller.kernel.netns import Sockets
from controller.model import Document, Source

log = structlog.get_logger("netctl.preflight")


@dataclass(frozen=True)
class Check:
    check: str
    subject: str
    ok: bool
    detail: str


def run(config: ClusterConfig, sockets: Sockets, timeout: float = 2.0) -> list[Check]:
    out: list[Check] = []
    host = resolve_advertise(sockets, config.advertise)
    underlay = underlay_of(sockets, host)
    if underlay is None:
        out.append(Check("advertise", host, False,
                         "not an address of this host: use this host's address on the underlay"))
    else:
        out.append(Check("advertise", host, True, f"on {underlay[0]} (MTU {underlay[1]})"))
    with Etcd(config.endpoints, timeout=config.timeout, ssl_context=config.ssl_context()) as client:
        try:
            snap = ipam.read(client)
        except EtcdError as exc:
            out.append(Check("cluster-store", ",".join(config.endpoints), False, str(exc)))
            return out
        out.append(Check("cluster-store", ",".join(config.endpoints), True,
                         f"revision {snap.revision}, {len(snap.alive)} live host(s)"))
        if underlay is not None:
            out.extend(mtu_checks(snap, host, underlay))
        out.extend(peer_checks(client, snap, host, timeout))
    return out


def mtu_checks(snap: Snapshot, host: str, underlay: tuple[str, int]) -> list[Check]:
    out = []
    for name, record in sorted(snap.networks.items()):
        n = load.network_spec(Document("Network", name, record.body, Source(f"etcd:{name}")))
        try:
            check_mtu(n, host, underlay)
            out.append(Check("mtu", name, True, f"fits {underlay[0]}'s MTU {underlay[1]}"))
        except UserError as exc:
            out.append(Check("mtu", name, False, str(exc)))
    return out


def peer_checks(client: Etcd, snap: Snapshot, host: str, timeout: float) -> list[Check]:
    out = []
    live = sorted(h for h in snap.alive if h != host)
    for name in sorted(set(snap.hosts) - snap.alive - {host}):
        out.append(Check("peer", name, False,
                         "registered but not alive: no agent renews its lease (host down?)"))
    for result in probe(client, host, live, timeout):
        if result.ok:
            out.append(Check("udp/4789", result.peer, True, f"probe arrived in {result.ms} ms"))
        else:
            out.append(Check(
                "udp/4789", result.peer, False,
                "no probe arrived: UDP 4789 from here to there is blocked (a firewall, a "
                "security group) or the path drops it; overlay traffic to this host will vanish",
            ))
    return out


def warn_unreachable(client: Etcd, snap: Snapshot, host: str) -> list[str]:
    """At overlay creation: probe the live peers, log (and return) what cannot be reached."""
    problems = [c for c in peer_checks(client, snap, host, 2.0) if not c.ok]
    for c in problems:
        log.warning("overlay preflight", check=c.check, peer=c.subject, problem=c.detail)
    return [f"{c.check} {c.subject}: {c.detail}" for c in problems]
