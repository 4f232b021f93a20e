"""`none`: the container gets its own namespace with only `lo`; the network owns nothing."""

from __future__ import annotations

from controller.drivers.base import BaseDriver


class NoneDriver(BaseDriver):
    name = "none"
    exclusive = True

    @property
    def shown_as(self) -> str:
        return "null"  # as Docker's
