"""Spec -> Target: make every name, subnet, address and MAC concrete (pure).

Decisions already taken (IDs, pool subnets, dynamic addresses) come in as `Allocations` and
are kept; new decisions are returned as a new `Allocations` that the caller persists *before*
touching the kernel, so an address is never handed out twice, even across crashes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from controller import drivers, ipam, names
from controller.errors import ResolveError
from controller.model import (
    Allocations,
    ContainerSpec,
    ContainerTarget,
    EndpointTarget,
    IPAddress,
    IPNetwork,
    NetworkSpec,
    NetworkTarget,
    Spec,
    SubnetTarget,
    Target,
)

# The spec is valid but cannot be made concrete (e.g. a pool is exhausted): errors.ResolveError


@dataclass(frozen=True)
class HostFacts:
    """What resolve needs to know about the host (observed by the caller)."""

    routes: tuple[IPNetwork, ...] = ()
    resolvers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # the host's resolv.conf `options` (timeout:1, rotate, ...)
    pools: tuple[ipaddress.IPv4Network, ...] = ()  # default-address-pools (): netctl's defaults
    accept_fwmark: str = ""  # bridge-accept-fwmark


def resolve(
    spec: Spec,
    allocations: Allocations,
    host: HostFacts,
    now: str,
    new_id: Callable[[], str] = names.new_id,
) -> tuple[Target, Allocations]:
    ids = dict(allocations.ids)
    created = dict(allocations.created)
    live = {("network", n.name) for n in spec.networks} | {
        ("container", c.name) for c in spec.containers
    }
    for key in sorted(live):
        if key not in ids:
            ids[key] = new_id()
            created[key] = now
    ids = {k: v for k, v in ids.items() if k in live}
    created = {k: v for k, v in created.items() if k in live}

    subnets = _pick_subnets(spec.networks, allocations.subnets, host.routes, host.pools)
    networks = tuple(
        _network_target(n, ids[("network", n.name)], created[("network", n.name)], subnets)
        for n in spec.networks
    )
    by_name = {n.name: n for n in networks}
    addresses = _assign_addresses(spec.containers, by_name, allocations.addresses)
    containers = tuple(
        _container_target(c, ids, created, by_name, addresses) for c in spec.containers
    )
    target = Target(networks, containers, host.resolvers, host.search, host.options, host.accept_fwmark)
    return target, Allocations(ids, created, subnets, addresses)


# --------------------------------------------------------------------------- networks


def _pick_subnets(
    networks: Collection[NetworkSpec],
    previous: Mapping[str, str],
    routes: Collection[IPNetwork],
    local_pools: Collection[ipaddress.IPv4Network] = (),
) -> dict[str, str]:
    """Keep earlier pool picks; pick new ones that overlap no route and no other network.

    A kept pick is not checked against routes (its own bridge's route is one), but a network
    declared later with an explicit subnet over it is refused, as Docker refuses it.
    """
    explicit = {
        ipaddress.ip_network(c.subnet, strict=False): n.name for n in networks for c in n.ipam if c.subnet
    }
    needs_pool = [n for n in networks if _wants_pool(n)]
    wanted = {n.name for n in needs_pool}
    kept = {name: subnet for name, subnet in previous.items() if name in wanted}
    for name, earlier in kept.items():
        picked = ipaddress.ip_network(earlier)
        for other, owner in explicit.items():
            if picked.overlaps(other):
                raise ResolveError(
                    f"network {owner}: subnet {other} overlaps {earlier}, which network {name} "
                    "already has from the default pool (Pool overlaps with other one on this "
                    "address space)"
                )
    taken: list[IPNetwork] = [*explicit, *map(ipaddress.ip_network, kept.values())]
    for net in needs_pool:
        if net.name in kept:
            continue
        pools = drivers.get(net.driver).pools(local_pools)
        try:
            subnet = ipam.pick_subnet(pools, [*taken, *routes])
        except ipam.PoolExhausted as exc:
            raise ResolveError(f"network {net.name}: {exc}") from exc
        kept[net.name] = str(subnet)
        taken.append(subnet)
    return kept


def _wants_pool(net: NetworkSpec) -> bool:
    return drivers.get(net.driver).addressed and not any(
        c.subnet and ipaddress.ip_network(c.subnet, strict=False).version == 4 for c in net.ipam
    )


def _network_target(
    net: NetworkSpec, net_id: str, created: str, pool_subnets: dict[str, str]
) -> NetworkTarget:
    driver = drivers.get(net.driver)
    subnets: list[SubnetTarget] = []
    if driver.addressed:
        if net.name in pool_subnets:
            subnets.append(_subnet_target(pool_subnets[net.name], None, None, {}, pooled=True))
        for cfg in net.ipam:
            if cfg.subnet:
                subnets.append(
                    _subnet_target(cfg.subnet, cfg.gateway, cfg.ip_range, cfg.aux_addresses)
                )
    mtu = driver.mtu(net.options)
    device = driver.device(net_id, net.options)
    return NetworkTarget(
        name=net.name,
        id=net_id,
        driver=net.driver,
        scope=driver.scope,
        device=device,
        mtu=mtu,
        subnets=tuple(sorted(subnets, key=lambda s: s.subnet.version)),
        internal=net.internal,
        enable_ipv6=net.enable_ipv6,
        options=dict(net.options),
        labels=dict(net.labels),
        created=created,
        builtin=net.builtin,
    )


def _subnet_target(
    subnet: str, gateway: str | None, ip_range: str | None, aux: object, pooled: bool = False
) -> SubnetTarget:
    network = ipaddress.ip_network(subnet, strict=False)
    gw_addr = ipaddress.ip_address(gateway) if gateway else ipam.first_host(network)
    gw = ipaddress.ip_interface(f"{gw_addr}/{network.prefixlen}")
    return SubnetTarget(
        subnet=network,
        gateway=gw,
        ip_range=ipaddress.ip_network(ip_range, strict=False) if ip_range else None,
        aux_addresses=dict(aux),  # type: ignore[call-overload]
        gateway_shown=bool(gateway) or pooled,
    )


# --------------------------------------------------------------------------- addresses


def _assign_addresses(
    containers: Collection[ContainerSpec],
    networks: dict[str, NetworkTarget],
    previous: object,
) -> dict[tuple[str, str, int], str]:
    """Static addresses first, then earlier dynamic picks that still fit, then new picks."""
    out: dict[tuple[str, str, int], str] = {}
    used: dict[tuple[str, int], set[IPAddress]] = {}
    wanted: list[tuple[str, str, int]] = []

    def reserve(net: str, family: int, address: str) -> None:
        used.setdefault((net, family), set()).add(ipaddress.ip_address(address))

    for c in containers:
        for att in c.networks:
            net = networks[att.network]
            for family, static in ((4, att.ipv4_address), (6, att.ipv6_address)):
                if _subnet(net, family) is None:
                    continue
                key = (att.network, c.name, family)
                if static:
                    out[key] = static
                    reserve(att.network, family, static)
                else:
                    wanted.append(key)

    prev = dict(previous)  # type: ignore[call-overload]
    fresh: list[tuple[str, str, int]] = []
    for key in wanted:
        net_name, _, family = key
        subnet = _subnet(networks[net_name], family)
        assert subnet is not None
        earlier = prev.get(key)
        if earlier is not None and _fits(earlier, subnet) and (
            ipaddress.ip_address(earlier) not in used.get((net_name, family), set())
        ) and ipaddress.ip_address(earlier) not in _reserved(subnet):
            out[key] = earlier
            reserve(net_name, family, earlier)
        else:
            fresh.append(key)

    # Lowest-first within one run: each pick starts where the previous one on its pool ended.
    unavailable: dict[tuple[str, int], set[IPAddress]] = {}
    cursor: dict[tuple[str, int], IPAddress] = {}
    for key in fresh:
        net_name, container, family = key
        subnet = _subnet(networks[net_name], family)
        assert subnet is not None
        pool = (net_name, family)
        if pool not in unavailable:
            unavailable[pool] = used.setdefault(pool, set()) | _reserved(subnet)
        try:
            address = ipam.allocate(subnet.subnet, subnet.ip_range, unavailable[pool], cursor.get(pool))
        except ipam.PoolExhausted as exc:
            raise ResolveError(f"container {container} on network {net_name}: {exc}") from exc
        out[key] = str(address)
        unavailable[pool].add(address)
        cursor[pool] = address
    return out


def _subnet(net: NetworkTarget, family: int) -> SubnetTarget | None:
    if family == 6 and not net.enable_ipv6:
        return None
    return next((s for s in net.subnets if s.subnet.version == family), None)


def _reserved(subnet: SubnetTarget) -> set[IPAddress]:
    gw = subnet.gateway.ip if subnet.gateway else None
    return ipam.reserved(subnet.subnet, gw, subnet.aux_addresses.values())


def _fits(address: str, subnet: SubnetTarget) -> bool:
    ip = ipaddress.ip_address(address)
    pool = subnet.ip_range or subnet.subnet
    return ip in pool and ip in subnet.subnet


# --------------------------------------------------------------------------- containers


def _container_target(
    spec: ContainerSpec,
    ids: dict[tuple[str, str], str],
    created: dict[tuple[str, str], str],
    networks: dict[str, NetworkTarget],
    addresses: dict[tuple[str, str, int], str],
) -> ContainerTarget:
    cid = ids[("container", spec.name)]
    shared = any(drivers.get(networks[a.network].driver).host_namespace for a in spec.networks)
    netns = None if shared else spec.name
    endpoints: list[EndpointTarget] = []
    for att in spec.networks:
        net = networks[att.network]
        if not drivers.get(net.driver).addressed:
            continue
        ep_id = names.endpoint_id(cid, net.id)
        v4 = addresses.get((net.name, spec.name, 4))
        v6 = addresses.get((net.name, spec.name, 6))
        sub4, sub6 = _subnet(net, 4), _subnet(net, 6)
        ipv4 = ipaddress.IPv4Interface(f"{v4}/{sub4.subnet.prefixlen}") if v4 and sub4 else None
        ipv6 = ipaddress.IPv6Interface(f"{v6}/{sub6.subnet.prefixlen}") if v6 and sub6 else None
        endpoints.append(
            EndpointTarget(
                id=ep_id,
                network=net.name,
                container=spec.name,
                ifname=names.container_ifname(len(endpoints)),
                host_ifname=names.host_veth_name(ep_id),
                mac=ipam.mac_from_ipv4(ipv4.ip) if ipv4 else ipam.mac_from_id(ep_id),
                ipv4=ipv4,
                ipv6=ipv6,
                gateway4=_gateway(sub4, net),  # type: ignore[arg-type]
                gateway6=_gateway(sub6, net),  # type: ignore[arg-type]
                mtu=net.mtu,
                aliases=att.aliases,
                static=tuple(a for a in (att.ipv4_address, att.ipv6_address) if a),
            )
        )
    return ContainerTarget(
        name=spec.name,
        id=cid,
        netns=netns,
        hostname=spec.hostname or cid[:12],
        endpoints=tuple(endpoints),
        ports=spec.ports,
        expose=spec.expose,
        links=spec.links,
        dns=spec.dns,
        dns_search=spec.dns_search,
        dns_options=spec.dns_options,
        extra_hosts=spec.extra_hosts,
        labels=dict(spec.labels),
        created=created[("container", spec.name)],
    )


def _gateway(subnet: SubnetTarget | None, net: NetworkTarget) -> IPAddress | None:
    # Internal networks have no way out, so their containers get no default route (Docker).
    # Overlay segments are pure layer 2 across hosts (drivers/overlay.py): no gateway on them.
    if subnet is None or subnet.gateway is None or net.internal or not drivers.get(net.driver).routed:
        return None
    return subnet.gateway.ip
