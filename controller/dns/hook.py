"""The embedded DNS server as a pipeline hook: a service resource (a dead server is drift),
started before the kernel work, told the new records once the kernel has them."""

from __future__ import annotations

from collections.abc import Sequence

from controller.dns import control
from controller.hooks import Hook, RemoteName
from controller.model import Resource, Target


class DnsHook(Hook):
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir

    def wanted(self, target: Target) -> list[Resource]:
        return control.service(self.state_dir, target)

    def observed(self) -> list[Resource]:
        return control.observe_service(self.state_dir)

    def before_kernel(self, target: Target) -> None:
        control.prestart(self.state_dir, target)  # its start-up overlaps the kernel work

    def converged(self, target: Target, remote: Sequence[RemoteName]) -> None:
        control.sync(self.state_dir, target, remote)  # names (remote ones too), (re)start
