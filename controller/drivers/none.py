"""`none`: the container gets its own namespace with only `lo`; the network owns nothing."""

from __future__ import annotations

from collections.abc import Sequence

from controller.model import EndpointTarget, NetworkTarget, Resource


class NoneDriver:
    name = "none"

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        return []

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        return []
