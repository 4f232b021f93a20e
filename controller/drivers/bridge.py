"""`bridge`: a Linux bridge with the gateway address; each endpoint is a veth plugged into it.

Firewall rules (masquerade, ICC, isolation, published ports) are rendered separately by the
firewall layer from the same target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controller import names, options, resources
from controller.drivers.base import BaseDriver
from controller.model import EndpointTarget, NetworkTarget, Resource


class BridgeDriver(BaseDriver):
    name = "bridge"
    addressed = True
    firewalled = True
    routed = True

    def device(self, network_id: str, opts: Mapping[str, str]) -> str | None:
        return opts.get(options.BRIDGE_NAME) or names.bridge_name(network_id)

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        assert network.device is not None
        out = [resources.bridge(
            network.device, network.mtu, names.owner_alias(network.id), names.bridge_mac(network.id)
        )]
        for subnet in network.subnets:
            if subnet.gateway is not None:
                out.append(resources.address(None, network.device, str(subnet.gateway)))
        return out

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        return [
            resources.veth(
                endpoint.host_ifname,
                master=network.device,
                mtu=endpoint.mtu,
                alias=names.owner_alias(endpoint.id),
                peer_netns=endpoint.container,
                peer_ifname=endpoint.ifname,
                hairpin=True,
            )
        ]
