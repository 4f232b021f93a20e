"""What every driver answers (the protocol) and the defaults most drivers share."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from controller import ipam, options
from controller.model import EndpointTarget, NetworkTarget, Resource

DEFAULT_MTU = 1500


class Driver(Protocol):
    """What the core asks about a kind of network; drivers answer, the core never names one."""

    name: str
    scope: str  # "local", or "global": its networks live in the cluster store
    addressed: bool  # its networks have subnets, its containers endpoints on them
    exclusive: bool  # one network of it; a container on it joins no other and publishes nothing
    host_namespace: bool  # its containers share the host's namespace (so: no links)
    firewalled: bool  # netctl's bridge firewall applies (ICC, isolation, masquerade, ports)
    routed: bool  # its gateway is the default route of its containers (and takes the first address)

    @property
    def shown_as(self) -> str:
        """In `network ls` and inspect (Docker's `none` is `null`)."""
        ...

    def device(self, network_id: str, opts: Mapping[str, str]) -> str | None:
        """The network's own device in the kernel (None: it has none)."""
        ...

    def mtu(self, opts: Mapping[str, str]) -> int: ...

    def pools(self, local: Collection[ipaddress.IPv4Network]) -> Iterable[ipaddress.IPv4Network]:
        """Where a network without a subnet gets one (`local`: the host's configured pools)."""
        ...

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        """Host-side objects of the network itself (a bridge and its gateway address...)."""
        ...

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        """Host-side objects of one endpoint (the veth and where it is plugged in)."""
        ...


class BaseDriver:
    """Defaults for a local driver without a device of its own (none, host)."""

    name = ""
    scope = "local"
    addressed = False
    exclusive = False
    host_namespace = False
    firewalled = False
    routed = False

    @property
    def shown_as(self) -> str:
        return self.name

    def device(self, network_id: str, opts: Mapping[str, str]) -> str | None:
        return None

    def mtu(self, opts: Mapping[str, str]) -> int:
        return int(opts.get(options.MTU, DEFAULT_MTU))

    def pools(self, local: Collection[ipaddress.IPv4Network]) -> Iterable[ipaddress.IPv4Network]:
        return local or ipam.default_local_pools()

    def network_resources(
        self, network: NetworkTarget, endpoints: Sequence[EndpointTarget]
    ) -> list[Resource]:
        return []

    def endpoint_resources(self, network: NetworkTarget, endpoint: EndpointTarget) -> list[Resource]:
        return []
