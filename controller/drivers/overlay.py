"""`overlay`: one layer-2 segment across hosts: a bridge plus a VXLAN device on every host.

As Docker does, each overlay network gets a namespace of its own on each host (`overlay:ID12`,
a file under /run/netctl/overlay), holding the bridge `ov-<id[:12]>` and the VXLAN device
`vx-<id[:12]>` (VNI from the cluster store, UDP 4789, learning off, ARP proxy on). The
VXLAN device is created in the host's namespace and then moved in, so its UDP socket stays
on the host's underlay. Endpoints are veths from that bridge to the containers.

Why a namespace and not the host's: a bridge in the host's namespace puts every overlay
frame through the host's iptables FORWARD chain (br_netfilter), where the bridge driver's
policy drops it, and would let the host route between overlays. In its own namespace the
segment is pure layer 2: isolated by construction, and not slowed by the host's firewall.

A container on a non-internal overlay network and on no bridge network also gets an endpoint
on the local gateway bridge `netctl_gwbridge` (Docker's docker_gwbridge: masquerade, no ICC),
its default route: the way out of the host, since the overlay segment has no gateway.

Remote endpoints are not learned by flooding: for each one the cluster store knows, the
VXLAN device gets an FDB entry (its MAC -> its host's address) and a permanent neighbour
entry (its IP -> MAC) from which the device answers ARP itself. Unknown destinations and
broadcasts other than ARP are dropped: no flooding, no multicast group.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from controller import ipam, names, options, resources
from controller.drivers.base import DEFAULT_MTU, BaseDriver
from controller.errors import UserError
from controller.model import (
    Attachment,
    ContainerSpec,
    EndpointTarget,
    NetworkSpec,
    NetworkTarget,
    Resource,
    Spec,
)

VNI_OPTION = options.OVERLAY_VNI
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


def namespace(network_id: str) -> str:
    """The name of an overlay network's namespace (a file under the overlay folder)."""
    return network_id[:12]


def port_alias(endpoint: EndpointTarget) -> str:
    """The owner alias of an overlay port, with its container end: the port lives in another
    namespace than its peer, so the alias is what says where the other end is."""
    return f"{names.owner_alias(endpoint.id)} {endpoint.container}/{endpoint.ifname}"


def port_peer(alias: str) -> tuple[str, str]:
    """(container, ifname) from a port's alias; ("", "") when it names none."""
    _, _, where = alias.partition(" ")
    container, _, ifname = where.rpartition("/")
    return container, ifname


def vni_of(network: NetworkTarget) -> int:
    value = network.options.get(VNI_OPTION)
    if not value:
        raise UserError(
            f"overlay network {network.name} has no VNI: overlay networks need a cluster store "
            "(--cluster-store etcd://HOST:PORT)"
        )
    return int(str(value).split(",")[0])


class OverlayDriver(BaseDriver):
    name = "overlay"
    scope = "global"
    addressed = True

    def device(self, network_id: str, opts: Mapping[str, str]) -> str | None:
        return f"ov-{network_id[:12]}"  # the bridge inside the network's own namespace

    def mtu(self, opts: Mapping[str, str]) -> int:
        return int(opts.get(options.MTU, DEFAULT_MTU - VXLAN_OVERHEAD))

    def pools(self, local: Collection[ipaddress.IPv4Network]) -> Iterable[ipaddress.IPv4Network]:
        return ipam.default_global_pools()

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        assert network.device is not None
        return [
            resources.overlay(
                namespace(network.id), bridge=network.device, vxlan=vxlan_name(network.id),
                vni=vni_of(network), port=VXLAN_PORT, mtu=network.mtu,
                alias=names.owner_alias(network.id), mac=names.bridge_mac(network.id),
            )
        ]

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        assert network.device is not None
        return [
            resources.ovport(
                endpoint.host_ifname,
                overlay=namespace(network.id),
                master=network.device,
                mtu=endpoint.mtu,
                alias=port_alias(endpoint),
                peer_netns=endpoint.container,
                peer_ifname=endpoint.ifname,
            )
        ]


def peer_resources(network_id: str, peers: Iterable[Peer]) -> list[Resource]:
    """The FDB and neighbour entries on the network's VXLAN device for these remote endpoints."""
    ns, dev = namespace(network_id), vxlan_name(network_id)
    out: dict[str, Resource] = {}
    for p in sorted(peers):
        for r in (resources.fdb(ns, dev, p.mac, p.vtep), resources.neigh(ns, dev, p.ip, p.mac)):
            out.setdefault(r.key, r)
    return list(out.values())


# --------------------------------------------------------------------------- the way out

GATEWAY_BRIDGE = "netctl_gwbridge"  # Docker's docker_gwbridge


def gateway_bridge_body() -> dict[str, object]:
    """The local bridge network through which overlay containers reach outside (masqueraded,
    as any bridge network's) without being able to talk to each other over it (no ICC)."""
    return {
        "apiVersion": "netctl/v1",
        "kind": "Network",
        "metadata": {"name": GATEWAY_BRIDGE, "labels": {"netctl.overlay.gateway": "true"}},
        "spec": {
            "driver": "bridge",
            "options": {
                options.BRIDGE_NAME: GATEWAY_BRIDGE,
                options.ICC: "false",
                options.MASQUERADE: "true",
            },
        },
    }


def needs_gateway(container: ContainerSpec, networks: Mapping[str, NetworkSpec]) -> bool:
    """On a non-internal overlay network and on no bridge network: the container's only way
    out is the gateway bridge (an overlay segment has no gateway)."""
    drivers = [networks[a.network] for a in container.networks if a.network in networks]
    return any(n.driver == "overlay" and not n.internal for n in drivers) and not any(
        n.driver == "bridge" for n in drivers
    )


def with_gateway_bridge(spec: Spec) -> Spec:
    """Containers that need it get one more endpoint, last, on the gateway bridge."""
    networks = {n.name: n for n in spec.networks}
    if GATEWAY_BRIDGE not in networks:
        return spec
    containers = tuple(
        replace(c, networks=(*c.networks, Attachment(GATEWAY_BRIDGE))) if needs_gateway(c, networks) else c
        for c in spec.containers
    )
    return replace(spec, containers=containers)
