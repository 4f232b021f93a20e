"""Multi-host helpers for tests and benchmarks: a lab of sandbox hosts plus etcd.

Built on controller.cluster.lab (what `netctl sandbox --hosts N` runs): an etcd sandbox
holding the underlay bridge and etcd, N host sandboxes on it, an overlay agent on each.
Nothing here touches the machine's own network namespace.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from controller.cluster.lab import Lab, LabHost
from tests import manifests

__all__ = ["Lab", "LabHost", "apply", "container", "ip_of", "lab", "network", "wait_until"]


@contextmanager
def lab(hosts: int = 3, ttl: int = 3, agents: bool = True) -> Iterator[Lab]:
    with Lab(hosts, ttl=ttl) as the_lab:
        if agents:
            for h in the_lab.hosts:
                the_lab.start_agent(h)
        yield the_lab


def network(name: str, driver: str = "overlay", **spec: Any) -> str:
    return manifests.network(name, driver=driver, **spec)


def container(name: str, networks: Sequence[Any]) -> str:
    return manifests.container(name, *networks)


def apply(the_lab: Lab, host: LabHost, *documents: str, check: bool = True) -> Any:
    """`netctl apply` of these documents on `host` (a file in the lab's folder: every
    sandbox sees it, since only /run, /etc/netns and the state are private)."""
    path = os.path.join(the_lab.dir, f"{host.name}-{time.monotonic_ns()}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n---\n".join(documents) + "\n")
    return host.netctl("apply", "-f", path, check=check)


def ip_of(host: LabHost, name: str, ifname: str = "eth0") -> str:
    out = json.loads(host.exec(name, f"ip -j -4 addr show {ifname}").stdout)
    return str(out[0]["addr_info"][0]["local"])


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 10.0,
    step: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> float:
    """Seconds until `predicate()` held; AssertionError after `timeout` (with `explain()`)."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s\n{explain() if explain else ''}")
        time.sleep(step)


def agent_logs(the_lab: Lab) -> str:
    return "\n".join(f"--- {h.name} agent\n{the_lab.agent_log(h)[-4000:]}" for h in the_lab.hosts)


def pings(host: LabHost, name: str, ip: str, size: int = 56, dont_fragment: bool = False) -> bool:
    df = "-M do " if dont_fragment else ""
    return host.exec(name, f"ping -c1 -W1 {df}-s {size} {ip}", check=False).returncode == 0


def overlay_ns(host: LabHost, network_name: str) -> str:
    """`nsenter --net=...` prefix for the overlay namespace of a network on a host."""
    nets = json.loads(host.netctl("-o", "json", "network", "ls").stdout)
    short = next(n["ID"] for n in nets if n["Name"] == network_name)
    return f"nsenter --net=/run/netctl/overlay/{short}"


def fdb(host: LabHost, network_name: str) -> str:
    ns = overlay_ns(host, network_name)
    return host.run(f"{ns} bridge fdb show | grep dst || true").stdout
