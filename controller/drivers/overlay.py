"""`overlay`: one layer-2 segment across hosts: a bridge plus a VXLAN device on every host.

Per host and network: the bridge `ov-<id[:12]>` (no address: the segment is pure layer 2,
so the host never routes between two overlays) and the VXLAN device `vx-<id[:12]>` plugged
into it, with the network's VNI from the cluster store, UDP 4789, learning off and ARP
proxy on. Endpoints are veths into the bridge, as with `bridge`.

Remote endpoints are not learned by flooding: for each one the cluster store knows, the
VXLAN device gets an FDB entry (its MAC -> its host's address) and a permanent neighbour
entry (its IP -> MAC) from which the device answers ARP itself. Unknown destinations and
broadcasts other than ARP are dropped: no flooding, no multicast group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller import names, resources
from controller.model import EndpointTarget, NetworkTarget, Resource

VNI_OPTION = "com.docker.network.driver.overlay.vxlanid_list"  # as `docker network inspect`
VXLAN_PORT = 4789  # IANA's VXLAN port, the one Docker and the seed article name
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


@dataclass(frozen=True, order=True)
class Peer:
    """An endpoint on another host: reached at `mac` through the tunnel to `vtep`."""

    ip: str
    mac: str
    vtep: str


def vxlan_name(network_id: str) -> str:
    return f"vx-{network_id[:12]}"


def vni_of(network: NetworkTarget) -> int:
    value = network.options.get(VNI_OPTION)
    if not value:
        raise ValueError(
            f"overlay network {network.name} has no VNI: overlay networks need a cluster store "
            "(--cluster-store etcd://HOST:PORT)"
        )
    return int(str(value).split(",")[0])


class OverlayDriver:
    name = "overlay"

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        assert network.device is not None
        alias = names.owner_alias(network.id)
        return [
            resources.bridge(network.device, network.mtu, alias),
            resources.vxlan(
                vxlan_name(network.id), vni=vni_of(network), port=VXLAN_PORT,
                master=network.device, mtu=network.mtu, alias=alias,
            ),
        ]

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        return [
            resources.veth(
                endpoint.host_ifname,
                master=network.device,
                mtu=endpoint.mtu,
                alias=names.owner_alias(endpoint.id),
                peer_netns=endpoint.container,
                peer_ifname=endpoint.ifname,
            )
        ]


def peer_resources(device: str, peers: Iterable[Peer]) -> list[Resource]:
    """The FDB and neighbour entries on VXLAN device `device` for these remote endpoints."""
    out: dict[str, Resource] = {}
    for p in sorted(peers):
        for r in (resources.fdb(device, p.mac, p.vtep), resources.neigh(device, p.ip, p.mac)):
            out.setdefault(r.key, r)
    return list(out.values())
