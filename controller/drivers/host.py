"""`host`: the container shares the host's namespace, so there is nothing to create."""

from __future__ import annotations

from collections.abc import Sequence

from controller.model import EndpointTarget, NetworkTarget, Resource


class HostDriver:
    name = "host"

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        return []

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        return []
