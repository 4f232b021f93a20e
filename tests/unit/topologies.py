"""Specs for the pure-layer tests, built from controller.model directly (no YAML), and
hypothesis strategies that generate whole topologies."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

from fake_kernel import FakeKernel
from hypothesis import strategies as st

from controller.desired import desired_resources
from controller.model import (
    Allocations,
    Attachment,
    ContainerSpec,
    IPAMConfig,
    Link,
    NetworkSpec,
    Resource,
    Spec,
    Target,
)
from controller.plan import plan
from controller.resolve import HostFacts, resolve

NOW = "2024-05-01T12:00:00Z"

DEFAULT_BRIDGE = NetworkSpec(
    name="bridge",
    driver="bridge",
    ipam=(IPAMConfig(subnet="172.17.0.0/16", gateway="172.17.0.1"),),
    options={
        "com.docker.network.bridge.name": "netctl0",
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.enable_icc": "true",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
        "com.docker.network.driver.mtu": "1500",
    },
    builtin=True,
)
HOST = NetworkSpec(name="host", driver="host", builtin=True)
NONE = NetworkSpec(name="none", driver="none", builtin=True)
BUILTIN = (DEFAULT_BRIDGE, HOST, NONE)


def ids(seed: str = "id") -> Callable[[], str]:
    """Deterministic 64-hex IDs (distinct per seed)."""
    counter = itertools.count()
    return lambda: hashlib.sha256(f"{seed}/{next(counter)}".encode()).hexdigest()


def network(name: str, subnet: str | None = None, **kw: object) -> NetworkSpec:
    ipam = (IPAMConfig(subnet=subnet),) if subnet else ()
    return NetworkSpec(name=name, ipam=ipam, **kw)  # type: ignore[arg-type]


def container(name: str, *networks: str | Attachment, **kw: object) -> ContainerSpec:
    atts = tuple(a if isinstance(a, Attachment) else Attachment(a) for a in networks)
    return ContainerSpec(name=name, networks=atts, **kw)  # type: ignore[arg-type]


def spec(*objects: NetworkSpec | ContainerSpec, builtin: bool = True) -> Spec:
    nets = tuple(o for o in objects if isinstance(o, NetworkSpec))
    return Spec(
        networks=(*BUILTIN, *nets) if builtin else nets,
        containers=tuple(o for o in objects if isinstance(o, ContainerSpec)),
    )


def resolved(
    s: Spec,
    allocations: Allocations | None = None,
    host: HostFacts | None = None,
    seed: str = "id",
) -> tuple[Target, Allocations]:
    return resolve(s, allocations or Allocations(), host or HostFacts(), NOW, new_id=ids(seed))


def wanted(s: Spec, allocations: Allocations | None = None, seed: str = "id") -> tuple[Resource, ...]:
    return desired_resources(resolved(s, allocations, seed=seed)[0])


def converge(
    kernel: FakeKernel, s: Spec, allocations: Allocations | None = None, seed: str = "id"
) -> tuple[Target, Allocations, tuple[Resource, ...]]:
    """resolve -> desired -> plan against the kernel -> apply; returns what was wanted."""
    target, allocs = resolved(s, allocations, seed=seed)
    want = desired_resources(target)
    kernel.apply(plan(want, kernel.observed()))
    return target, allocs, want


# --------------------------------------------------------------------------- strategies

USER_NETWORKS = ("n0", "n1", "n2")
CONTAINERS = tuple(f"c{i}" for i in range(6))


@st.composite
def user_network(draw: st.DrawFn, index: int) -> NetworkSpec:
    """A user bridge network; explicit subnets are 10.<index>.x.0/24 so no two overlap."""
    name = USER_NETWORKS[index]
    ipam: tuple[IPAMConfig, ...] = ()
    if draw(st.booleans()):
        third = draw(st.integers(0, 1))
        base = f"10.{index}.{third}"
        ipam = (
            IPAMConfig(
                subnet=f"{base}.0/24",
                gateway=draw(st.sampled_from([None, f"{base}.254"])),
                ip_range=draw(st.sampled_from([None, f"{base}.128/25"])),
                aux_addresses=draw(st.sampled_from([{}, {"router": f"{base}.130"}])),
            ),
        )
    ipv6 = draw(st.booleans())
    if ipv6:
        ipam = (*ipam, IPAMConfig(subnet=f"fd00:{index}::/64"))
    options: dict[str, str] = {}
    mtu = draw(st.sampled_from([None, "1400", "1500"]))
    if mtu:
        options["com.docker.network.driver.mtu"] = mtu
    if draw(st.booleans()):
        options["com.docker.network.bridge.name"] = f"nbr{index}"
    return NetworkSpec(
        name=name, ipam=ipam, internal=draw(st.booleans()), enable_ipv6=ipv6, options=options
    )


def _static(net: NetworkSpec, slot: int) -> str | None:
    """A static address that Docker accepts: in the subnet and ipRange, not reserved."""
    v4 = [c.subnet for c in net.ipam if c.subnet and "." in c.subnet]
    if not v4:
        return None
    base = v4[0].rsplit(".", 1)[0]
    return f"{base}.{200 + slot}"


@st.composite
def topologies(draw: st.DrawFn) -> Spec:
    chosen = draw(st.lists(st.integers(0, len(USER_NETWORKS) - 1), unique=True, max_size=3))
    users = [draw(user_network(i)) for i in sorted(chosen)]
    by_name = {n.name: n for n in users}
    containers: list[ContainerSpec] = []
    names = draw(st.lists(st.sampled_from(CONTAINERS), unique=True, max_size=len(CONTAINERS)))
    for name in sorted(names):
        slot = CONTAINERS.index(name)
        mode = draw(st.sampled_from(["bridged", "bridged", "bridged", "none", "host"]))
        if mode != "bridged":
            containers.append(container(name, mode))
            continue
        nets = draw(st.lists(st.sampled_from(["bridge", *by_name]), unique=True, max_size=3))
        atts = []
        for n in nets:
            static = _static(by_name[n], slot) if n in by_name and draw(st.booleans()) else None
            atts.append(Attachment(n, ipv4_address=static))
        containers.append(
            container(
                name,
                *atts,
                hostname=draw(st.sampled_from([None, f"{name}.example"])),
                extra_hosts=draw(st.sampled_from([(), (("db", "10.9.9.9"),)])),
                links=tuple(
                    Link(other, f"{other}-alias")
                    for other in draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
                    if other != name
                ),
            )
        )
    return Spec(networks=(*BUILTIN, *users), containers=tuple(containers))
