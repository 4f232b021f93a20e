"""Subnet pools, address allocation and MACs: ipam.py alone and through resolve."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from topologies import BUILTIN, container, network, resolved, spec

from controller import ipam
from controller.errors import ResolveError
from controller.model import Allocations, Attachment, ContainerSpec, IPAMConfig, NetworkSpec, Spec, Target
from controller.resolve import HostFacts

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

net4 = ipaddress.IPv4Network
ip4 = ipaddress.IPv4Address


# --------------------------------------------------------------------------- pools


def test_local_pools_are_dockers_default_order() -> None:
    pools = list(ipam.default_local_pools())
    assert pools[:15] == [net4(f"172.{n}.0.0/16") for n in range(17, 32)]
    assert pools[15:] == [net4(f"192.168.{16 * i}.0/20") for i in range(16)]
    assert len(pools) == 31


def test_global_pools_are_10_slash_8_in_slash_24s() -> None:
    first = list(itertools.islice(ipam.default_global_pools(), 3))
    assert first == [net4("10.0.0.0/24"), net4("10.0.1.0/24"), net4("10.0.2.0/24")]


def test_pick_subnet_takes_the_first_free_pool() -> None:
    assert ipam.pick_subnet(ipam.default_local_pools(), []) == net4("172.17.0.0/16")
    assert ipam.pick_subnet(ipam.default_local_pools(), [net4("172.17.0.0/16")]) == net4("172.18.0.0/16")


def test_pick_subnet_skips_overlapping_routes_and_subnets() -> None:
    taken = [net4("172.17.0.0/16"), net4("172.18.5.0/24"), ipaddress.ip_network("172.19.0.0/17")]
    assert ipam.pick_subnet(ipam.default_local_pools(), taken) == net4("172.20.0.0/16")
    # a route that covers every 172.x pool sends us to 192.168.0.0/20, then onwards
    assert ipam.pick_subnet(ipam.default_local_pools(), [net4("172.16.0.0/12")]) == net4("192.168.0.0/20")
    assert ipam.pick_subnet(
        ipam.default_local_pools(), [net4("172.16.0.0/12"), net4("192.168.0.0/19")]
    ) == net4("192.168.32.0/20")


def test_pick_subnet_ignores_ipv6() -> None:
    assert ipam.pick_subnet(ipam.default_local_pools(), [ipaddress.ip_network("::/0")]) == net4(
        "172.17.0.0/16"
    )


def test_pick_subnet_exhausted() -> None:
    with pytest.raises(ipam.PoolExhausted):
        ipam.pick_subnet(ipam.default_local_pools(), [net4("172.16.0.0/12"), net4("192.168.0.0/16")])


def test_gateway_is_the_first_address() -> None:
    assert ipam.first_host(net4("172.17.0.0/16")) == ip4("172.17.0.1")
    assert ipam.first_host(net4("10.1.2.64/26")) == ip4("10.1.2.65")
    assert ipam.first_host(ipaddress.IPv6Network("fd00:1::/64")) == ipaddress.IPv6Address("fd00:1::1")


# --------------------------------------------------------------------------- addresses


def test_reserved_addresses() -> None:
    subnet = net4("10.0.0.0/24")
    assert ipam.reserved(subnet, ip4("10.0.0.1"), ["10.0.0.5"]) == {
        ip4("10.0.0.0"),
        ip4("10.0.0.1"),
        ip4("10.0.0.255"),
        ip4("10.0.0.5"),
    }
    v6 = ipaddress.IPv6Network("fd00::/64")
    assert ipam.reserved(v6, None, []) == {ipaddress.IPv6Address("fd00::")}


def test_allocate_lowest_free_address() -> None:
    subnet = net4("172.17.0.0/16")
    taken = ipam.reserved(subnet, ip4("172.17.0.1"), [])
    assert ipam.allocate(subnet, None, taken) == ip4("172.17.0.2")
    assert ipam.allocate(subnet, None, taken | {ip4("172.17.0.2")}) == ip4("172.17.0.3")


def test_allocate_respects_ip_range() -> None:
    subnet, pool = net4("172.28.0.0/16"), net4("172.28.5.0/24")
    taken = ipam.reserved(subnet, ip4("172.28.0.1"), [])
    got = ipam.allocate(subnet, pool, taken)
    assert got in pool
    assert ipam.allocate(subnet, pool, taken | {got}) == got + 1


def test_allocate_exhausted() -> None:
    subnet = net4("10.0.0.0/30")
    with pytest.raises(ipam.PoolExhausted):
        ipam.allocate(subnet, None, ipam.reserved(subnet, ip4("10.0.0.1"), ["10.0.0.2"]))


@PROPERTY
@given(
    prefix=st.integers(24, 29),
    range_prefix=st.integers(0, 3),
    offset=st.integers(0, 255),
    taken=st.sets(st.integers(0, 255), max_size=64),
    aux=st.sets(st.integers(0, 255), max_size=3),
)
def test_allocate_never_returns_reserved_or_used(
    prefix: int, range_prefix: int, offset: int, taken: set[int], aux: set[int]
) -> None:
    subnet = net4(f"10.20.30.0/{prefix}")
    size = subnet.num_addresses
    sub_prefix = min(prefix + range_prefix, 32)
    ranges = list(subnet.subnets(new_prefix=sub_prefix))
    ip_range = ranges[offset % len(ranges)] if range_prefix else None
    gateway = ipam.first_host(subnet)
    aux_addrs = [str(subnet.network_address + a % size) for a in aux]
    used = {subnet.network_address + t % size for t in taken}
    unavailable = ipam.reserved(subnet, gateway, aux_addrs) | used
    candidates = [a for a in (ip_range or subnet) if a not in unavailable]
    if not candidates:
        with pytest.raises(ipam.PoolExhausted):
            ipam.allocate(subnet, ip_range, unavailable)
        return
    got = ipam.allocate(subnet, ip_range, unavailable)
    assert got == min(candidates)  # lowest first
    assert got in subnet and got in (ip_range or subnet)
    assert got not in unavailable
    assert got not in (subnet.network_address, subnet.broadcast_address, gateway)


# --------------------------------------------------------------------------- MACs


def test_mac_from_ipv4() -> None:
    assert ipam.mac_from_ipv4(ip4("172.17.0.2")) == "02:42:ac:11:00:02"
    assert ipam.mac_from_ipv4(ip4("172.17.0.3")) == "02:42:ac:11:00:03"
    assert ipam.mac_from_ipv4(ip4("192.168.255.254")) == "02:42:c0:a8:ff:fe"


def test_mac_from_id_is_a_six_octet_local_mac() -> None:
    mac = ipam.mac_from_id("0123456789abcdef" * 4)
    assert mac == "02:42:01:23:45:67"


# --------------------------------------------------------------------------- through resolve


def addresses(target: Target, network: str) -> dict[str, ipaddress.IPv4Address]:
    return {
        ep.container: ep.ipv4.ip
        for c in target.containers
        for ep in c.endpoints
        if ep.network == network and ep.ipv4
    }


def test_user_network_gets_the_next_pool_after_the_default_bridge() -> None:
    target, allocs = resolved(spec(network("isolated_nw")))
    assert str(target.network("isolated_nw").subnets[0].subnet) == "172.18.0.0/16"  # type: ignore[union-attr]
    assert str(target.network("isolated_nw").subnets[0].gateway) == "172.18.0.1/16"  # type: ignore[union-attr]
    assert allocs.subnets == {"isolated_nw": "172.18.0.0/16"}


def test_pool_skips_host_routes_and_explicit_subnets() -> None:
    s = spec(network("a"), network("b", "172.19.0.0/16"), network("c"))
    host = HostFacts(routes=(ipaddress.ip_network("172.18.128.0/17"),))
    target, _ = resolved(s, host=host)
    picked = {n.name: str(n.subnets[0].subnet) for n in target.networks if n.subnets}
    assert picked["a"] == "172.20.0.0/16"
    assert picked["b"] == "172.19.0.0/16"
    assert picked["c"] == "172.21.0.0/16"


def test_pool_picks_are_kept_even_when_a_route_appears() -> None:
    """The bridge's own route (or any later one) must not move an existing network."""
    s = spec(network("a"))
    _, allocs = resolved(s)
    again, _ = resolved(s, allocs, host=HostFacts(routes=(ipaddress.ip_network("172.18.0.0/16"),)))
    assert str(again.network("a").subnets[0].subnet) == "172.18.0.0/16"  # type: ignore[union-attr]


def test_kept_pool_subnet_never_overlaps_a_new_explicit_subnet() -> None:
    """Network a got 172.18.0.0/16 from the pool; then network b is declared with that subnet
    explicitly. Load accepts it (it only compares explicit subnets), so resolve must either
    refuse or move a: two bridges with the same subnet break both networks."""
    _, allocs = resolved(spec(network("a")))
    assert allocs.subnets == {"a": "172.18.0.0/16"}
    s = spec(network("a"), network("b", "172.18.0.0/16"))
    try:
        target, _ = resolved(s, allocs)
    except ResolveError:
        return
    subnets = [sub.subnet for n in target.networks for sub in n.subnets]
    overlapping = [(x, y) for x, y in itertools.combinations(subnets, 2) if x.overlaps(y)]
    assert overlapping == []


def test_aux_addresses_and_explicit_gateway_are_never_handed_out() -> None:
    net = NetworkSpec(
        "app",
        ipam=(
            IPAMConfig("10.5.0.0/29", gateway="10.5.0.2", aux_addresses={"r": "10.5.0.1", "s": "10.5.0.4"}),
        ),
    )
    s = spec(net, *(container(f"c{i}", "app") for i in range(3)))
    target, _ = resolved(s)
    assert sorted(map(str, addresses(target, "app").values())) == ["10.5.0.3", "10.5.0.5", "10.5.0.6"]
    with pytest.raises(ResolveError, match="c3 on network app"):
        resolved(spec(net, *(container(f"c{i}", "app") for i in range(4))))


def test_static_addresses_are_reserved_before_dynamic_ones() -> None:
    s = spec(
        network("app", "10.5.0.0/24"),
        container("dyn", "app"),
        container("fixed", Attachment("app", ipv4_address="10.5.0.2")),
    )
    target, allocs = resolved(s)
    assert addresses(target, "app") == {"dyn": ip4("10.5.0.3"), "fixed": ip4("10.5.0.2")}
    assert allocs.addresses[("app", "fixed", 4)] == "10.5.0.2"


def test_ip_range_through_resolve() -> None:
    net = NetworkSpec("app", ipam=(IPAMConfig("172.28.0.0/16", ip_range="172.28.5.0/24"),))
    target, _ = resolved(spec(net, container("a", "app"), container("b", "app")))
    got = addresses(target, "app")
    assert all(a in net4("172.28.5.0/24") for a in got.values())
    assert len(set(got.values())) == 2


def test_ipv6_addresses_when_enabled() -> None:
    net = NetworkSpec("v6", ipam=(IPAMConfig("fd00:1::/64"),), enable_ipv6=True)
    target, allocs = resolved(spec(net, container("a", "v6")))
    ep = target.container("a").endpoints[0]  # type: ignore[union-attr]
    assert str(ep.ipv4) == "172.18.0.2/16"  # the IPv4 subnet still comes from the pool
    assert str(ep.ipv6) == "fd00:1::2/64"
    assert str(ep.gateway6) == "fd00:1::1"
    assert allocs.addresses[("v6", "a", 6)] == "fd00:1::2"


# --------------------------------------------------------------------------- properties over resolve

SUBNETS = (None, "10.7.0.0/26", "10.8.0.0/27")
RANGES = {"10.7.0.0/26": (None, "10.7.0.32/27"), "10.8.0.0/27": (None, "10.8.0.16/28")}


@st.composite
def crowded(draw: st.DrawFn) -> Spec:
    """Up to three networks (pool or small explicit subnets) and many containers on them."""
    nets: list[NetworkSpec] = []
    for i, subnet in enumerate(draw(st.lists(st.sampled_from(SUBNETS), min_size=1, max_size=3, unique=True))):
        if subnet is None:
            nets.append(NetworkSpec(f"net{i}"))
            continue
        ip_range = draw(st.sampled_from(RANGES[subnet]))
        aux = draw(st.sampled_from([{}, {"aux": str(ipaddress.ip_network(subnet).network_address + 3)}]))
        nets.append(NetworkSpec(f"net{i}", ipam=(IPAMConfig(subnet, ip_range=ip_range, aux_addresses=aux),)))
    count = draw(st.integers(1, 12))
    containers = []
    for j in range(count):
        chosen = draw(st.lists(st.sampled_from([n.name for n in nets] + ["bridge"]), unique=True, max_size=3))
        containers.append(ContainerSpec(f"c{j:02}", networks=tuple(Attachment(n) for n in chosen)))
    return Spec(networks=(*BUILTIN, *nets), containers=tuple(containers))


def check_addresses(s: Spec, target: Target) -> None:
    for net in target.networks:
        for sub in net.subnets:
            got = [a for a in addresses(target, net.name).values() if a.version == sub.subnet.version]
            assert len(got) == len(set(got)), f"{net.name}: an address was handed out twice"
            assert s.network(net.name) is not None
            gateway = sub.gateway.ip if sub.gateway else None
            forbidden = ipam.reserved(sub.subnet, gateway, sub.aux_addresses.values())
            for a in got:
                assert a in sub.subnet
                assert a in (sub.ip_range or sub.subnet)
                assert a not in forbidden


@PROPERTY
@given(crowded())
def test_resolve_hands_out_each_address_once_inside_subnet_and_range(s: Spec) -> None:
    try:
        target, _ = resolved(s)
    except ResolveError as exc:  # a small subnet can fill up: that must be the only reason
        assert "no available IP address" in str(exc)
        return
    check_addresses(s, target)


@PROPERTY
@given(crowded())
def test_re_resolve_is_stable(s: Spec) -> None:
    try:
        first, allocs = resolved(s)
    except ResolveError:
        return
    second, again = resolved(s, allocs, seed="other")  # IDs come from allocations, not new_id
    assert second == first
    assert again == allocs


def _shrink_and_grow(s: Spec, drop: Iterable[int], extra: int) -> Spec:
    dropped = set(drop)
    kept = [c for i, c in enumerate(s.containers) if i not in dropped]
    nets = [n.name for n in s.networks if n.driver == "bridge"]
    new = [ContainerSpec(f"new{k}", networks=(Attachment(nets[k % len(nets)]),)) for k in range(extra)]
    # new containers come first, so a naive lowest-first allocator would steal addresses
    return Spec(networks=s.networks, containers=(*new, *kept))


@PROPERTY
@given(crowded(), st.sets(st.integers(0, 11), max_size=6), st.integers(0, 4))
def test_existing_containers_keep_their_addresses(s: Spec, drop: set[int], extra: int) -> None:
    try:
        first, allocs = resolved(s)
    except ResolveError:
        return
    changed = _shrink_and_grow(s, drop, extra)
    try:
        second, _ = resolved(changed, allocs, seed="later")
    except ResolveError as exc:
        assert "no available IP address" in str(exc)
        return
    check_addresses(changed, second)
    for c in changed.containers:
        before, after = first.container(c.name), second.container(c.name)
        if before is None:
            continue
        assert after is not None
        assert [(e.network, e.ipv4, e.mac) for e in after.endpoints] == [
            (e.network, e.ipv4, e.mac) for e in before.endpoints
        ]
        assert after.id == before.id


def test_removed_containers_free_their_addresses() -> None:
    s = spec(network("app", "10.5.0.0/24"), container("a", "app"), container("b", "app"))
    _, allocs = resolved(s)
    only_b = spec(network("app", "10.5.0.0/24"), container("b", "app"))
    target, after = resolved(only_b, allocs)
    assert addresses(target, "app") == {"b": ip4("10.5.0.3")}
    assert ("app", "a", 4) not in after.addresses
    assert ("container", "a") not in after.ids
    grown = spec(network("app", "10.5.0.0/24"), container("b", "app"), container("c", "app"))
    again, _ = resolved(grown, after)
    assert addresses(again, "app") == {"b": ip4("10.5.0.3"), "c": ip4("10.5.0.2")}


def test_earlier_pick_taken_by_a_new_static_address_moves() -> None:
    s = spec(network("app", "10.5.0.0/24"), container("a", "app"))
    _, allocs = resolved(s)
    assert allocs.addresses[("app", "a", 4)] == "10.5.0.2"
    clash = spec(
        network("app", "10.5.0.0/24"),
        container("a", "app"),
        container("b", Attachment("app", ipv4_address="10.5.0.2")),
    )
    target, _ = resolved(clash, allocs)
    assert addresses(target, "app") == {"a": ip4("10.5.0.3"), "b": ip4("10.5.0.2")}


def test_allocations_start_empty() -> None:
    target, allocs = resolved(Spec())
    assert target.networks == () and target.containers == ()
    assert allocs == Allocations()
