"""`host`: the container shares the host's namespace, so, like `none`, the network owns
nothing (resolve gives its containers no namespace and no endpoint)."""

from __future__ import annotations

from controller.drivers.none import NoneDriver


class HostDriver(NoneDriver):
    name = "host"
    host_namespace = True

    @property
    def shown_as(self) -> str:
        return "host"
