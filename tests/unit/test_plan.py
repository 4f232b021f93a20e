"""plan(target, observed): diff, lifetimes and order, checked against a simulated kernel."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import pytest
from fake_kernel import FakeKernel, KernelError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from topologies import container, converge, network, spec, topologies, wanted

from controller import resources
from controller.model import (
    Action,
    Allocations,
    Attachment,
    Change,
    Kind,
    Observed,
    Op,
    Plan,
    Resource,
    Spec,
)
from controller.plan import plan

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ops(p: Plan) -> list[tuple[Op, str]]:
    return [(a.op, a.resource.key) for a in p.actions]


def keys(p: Plan, op: Op) -> list[str]:
    return [a.resource.key for a in p.actions if a.op is op]


def kinds(p: Plan, op: Op) -> set[Kind]:
    return {a.resource.kind for a in p.actions if a.op is op}


def by_key(rs: Sequence[Resource]) -> dict[str, Resource]:
    return {r.key: r for r in rs}


def replace_attrs(r: Resource, **attrs: object) -> Resource:
    return dataclasses.replace(r, attrs={**r.attrs, **attrs})


def two_containers() -> tuple[Resource, ...]:
    return wanted(spec(network("app"), container("web", "app"), container("db", "app", "bridge")))


def applied(rs: Sequence[Resource]) -> FakeKernel:
    kernel = FakeKernel()
    kernel.apply(plan(rs, kernel.observed()))
    assert kernel.resources == by_key(rs)
    return kernel


# --------------------------------------------------------------------------- the fake kernel


def test_fake_kernel_refuses_what_the_kernel_refuses() -> None:
    ns = resources.netns("c")
    br = resources.bridge("br0", 1500, "netctl:x", "02:42:00:00:00:01")
    veth = resources.veth("veth0", master="br0", mtu=1500, alias="a", peer_netns="c", peer_ifname="eth0")
    kernel = FakeKernel([ns])
    with pytest.raises(KernelError, match=r"needs link:/br0"):
        kernel.create(veth)
    with pytest.raises(KernelError, match="does not exist"):
        kernel.update(br)
    with pytest.raises(KernelError, match="does not exist"):
        kernel.delete(br.key)
    with pytest.raises(KernelError, match="already exists"):
        kernel.create(ns)


def test_fake_kernel_destroys_children_with_their_parent() -> None:
    want = wanted(spec(container("web", "bridge")))
    kernel = applied(want)
    veth = next(r for r in want if r.kind is Kind.VETH)
    kernel.delete(veth.key)
    left = {r.kind for r in kernel.resources.values() if r.netns == "web"}
    assert left == set()  # the interface, its address and the route went with the veth
    assert "netns:web" in kernel.resources
    kernel.delete("link:/netctl0")
    assert not any(k.startswith("addr:/netctl0/") for k in kernel.resources)


def test_fake_kernel_destroys_a_namespace_with_what_lives_in_it() -> None:
    kernel = applied(wanted(spec(container("web", "bridge"))))
    kernel.delete("netns:web")
    assert not any(r.kind is Kind.VETH for r in kernel.resources.values())
    assert not any(r.netns == "web" for r in kernel.resources.values())


def test_fake_kernel_reports_dangling_dependencies() -> None:
    kernel = applied(wanted(spec(container("web", "bridge"))))
    with pytest.raises(KernelError, match="needs link:/netctl0"):
        kernel.apply(Plan((Action(Op.DELETE, kernel.resources["link:/netctl0"]),)))


# --------------------------------------------------------------------------- order


def test_creates_come_dependencies_first() -> None:
    want = two_containers()
    p = plan(want, Observed())
    assert {a.op for a in p.actions} == {Op.CREATE}
    assert len(p.actions) == len(want)
    position = {a.resource.key: i for i, a in enumerate(p.actions)}
    for a in p.actions:
        for dep in (*a.resource.deps, a.resource.parent):
            if dep is not None:
                assert position[dep] < position[a.resource.key], (dep, a.resource.key)
    FakeKernel().apply(p)  # raises on any order violation


def test_deletes_come_in_reverse_dependency_order() -> None:
    want = two_containers()
    kernel = applied(want)
    p = plan((), kernel.observed())
    assert {a.op for a in p.actions} == {Op.DELETE}
    position = {a.resource.key: i for i, a in enumerate(p.actions)}
    for a in p.actions:
        for dep in a.resource.deps:
            if dep in position:
                assert position[a.resource.key] < position[dep], (a.resource.key, dep)
    kernel.apply(p)
    assert kernel.resources == {}


def test_deleting_a_parent_does_not_delete_its_children() -> None:
    want = two_containers()
    kernel = applied(want)
    p = plan((), kernel.observed())
    # nslinks, addresses, routes and per-bridge sysctls die with their veth or bridge: never
    # deleted on their own (firewall chains and jumps are deleted explicitly).
    assert kinds(p, Op.DELETE) == {
        Kind.NETNS, Kind.BRIDGE, Kind.VETH, Kind.FILE, Kind.CHAIN, Kind.JUMP, Kind.SYSCTL
    }
    assert not any(
        a.resource.parent for a in p.actions if a.op is Op.DELETE
    ), "a child was deleted on its own"
    kernel.apply(p)


def test_removing_one_container_deletes_only_its_roots() -> None:
    s = spec(network("app"), container("web", "app"), container("db", "app"))
    kernel = FakeKernel()
    target, allocs, _ = converge(kernel, s)
    db_veth = target.container("db").endpoints[0].host_ifname  # type: ignore[union-attr]
    less = dataclasses.replace(s, containers=s.containers[:1])
    want = wanted(less, allocs)
    p = plan(want, kernel.observed())
    deletes = keys(p, Op.DELETE)
    assert sorted(deletes) == sorted(
        [f"link:/{db_veth}", "file:/etc/netns/db/hosts", "file:/etc/netns/db/resolv.conf", "netns:db"]
    )
    assert deletes.index(f"link:/{db_veth}") < deletes.index("netns:db")
    # Only the firewall chains that mention db's address change, in place.
    assert p.count(Op.CREATE) == 0
    assert {a.resource.kind for a in p.actions if a.op is Op.UPDATE} <= {Kind.CHAIN}
    kernel.apply(p)
    assert kernel.resources == by_key(want)


# --------------------------------------------------------------------------- replacement


@pytest.mark.parametrize("attr, value", [("peer_netns", "elsewhere"), ("peer_ifname", "eth7")])
def test_immutable_change_replaces_the_veth_and_recreates_its_children(attr: str, value: str) -> None:
    want = wanted(spec(container("web", "bridge")))
    veth = next(r for r in want if r.kind is Kind.VETH)
    seen = [replace_attrs(r, **{attr: value}) if r is veth else r for r in want]
    if attr == "peer_netns":
        seen.append(resources.netns("elsewhere"))
    p = plan(want, seen)
    assert keys(p, Op.DELETE) == [veth.key] + (["netns:elsewhere"] if attr == "peer_netns" else [])
    assert p.count(Op.UPDATE) == 0
    recreated = {a.resource.kind for a in p.actions if a.op is Op.CREATE}
    assert recreated == {Kind.VETH, Kind.NSLINK, Kind.ADDRESS, Kind.ROUTE}
    kernel = FakeKernel(seen)
    kernel.apply(p)
    assert kernel.resources == by_key(want)
    assert plan(want, kernel.observed()).empty


def test_kind_change_replaces() -> None:
    want = [resources.bridge("x0", 1500, "netctl:a", "02:42:00:00:00:02")]
    seen = [dataclasses.replace(want[0], kind=Kind.VETH)]
    assert ops(plan(want, seen)) == [(Op.DELETE, "link:/x0"), (Op.CREATE, "link:/x0")]


def test_wanted_children_of_a_replaced_parent_are_created_even_if_observed() -> None:
    want = wanted(spec(container("web", "bridge")))
    veth = next(r for r in want if r.kind is Kind.VETH)
    seen = [replace_attrs(r, peer_ifname="eth9") if r is veth else r for r in want]
    created = keys(plan(want, seen), Op.CREATE)
    assert "link:web/eth0" in created
    assert "addr:web/eth0/172.17.0.2/16" in created
    assert "route:web/default" in created


def test_a_changed_address_recreates_the_route_through_it() -> None:
    s = spec(network("app", "10.1.0.0/24"), container("web", Attachment("app", "10.1.0.10")))
    kernel = FakeKernel()
    _, allocs, _ = converge(kernel, s)
    moved = spec(network("app", "10.1.0.0/24"), container("web", Attachment("app", "10.1.0.20")))
    want = wanted(moved, allocs)
    p = plan(want, kernel.observed())
    assert keys(p, Op.DELETE) == ["addr:web/eth0/10.1.0.10/24"]  # the route dies with it
    assert "route:web/default" in keys(p, Op.CREATE)
    nslink = next(a for a in p.actions if a.resource.key == "link:web/eth0")
    assert nslink.op is Op.UPDATE
    assert nslink.changes == (Change("mac", "02:42:0a:01:00:0a", "02:42:0a:01:00:14"),)
    kernel.apply(p)
    assert plan(want, kernel.observed()).empty


# --------------------------------------------------------------------------- updates in place


def test_mtu_change_updates_in_place() -> None:
    s = spec(network("app"), container("web", "app"))
    kernel = FakeKernel()
    _, allocs, _ = converge(kernel, s)
    lower = spec(network("app", options={"com.docker.network.driver.mtu": "1400"}), container("web", "app"))
    want = wanted(lower, allocs)
    p = plan(want, kernel.observed())
    assert {a.op for a in p.actions} == {Op.UPDATE}
    assert {a.resource.kind for a in p.actions} == {Kind.BRIDGE, Kind.VETH, Kind.NSLINK}
    assert all(a.changes == (Change("mtu", 1500, 1400),) for a in p.actions)
    kernel.apply(p)
    assert plan(want, kernel.observed()).empty


def test_link_down_is_brought_up_in_place() -> None:
    want = wanted(spec(container("web", "bridge")))
    seen = [replace_attrs(r, up=False) if r.kind is Kind.BRIDGE else r for r in want]
    p = plan(want, seen)
    assert len(p.actions) == 1
    (action,) = p.actions
    assert (action.op, action.resource.key, action.changes) == (
        Op.UPDATE,
        "link:/netctl0",
        (Change("up", False, True),),
    )


def test_renamed_bridge_moves_its_veths() -> None:
    s = spec(network("app"), container("web", "app"))
    kernel = FakeKernel()
    _, allocs, _ = converge(kernel, s)
    renamed = spec(
        network("app", options={"com.docker.network.bridge.name": "apps0"}), container("web", "app")
    )
    want = wanted(renamed, allocs)
    p = plan(want, kernel.observed())
    veth = next(a for a in p.actions if a.resource.kind is Kind.VETH)
    assert veth.op is Op.UPDATE and [c.name for c in veth.changes] == ["master"]
    assert p.actions[0].op is Op.DELETE and p.actions[0].resource.kind is Kind.BRIDGE
    kernel.apply(p)
    assert plan(want, kernel.observed()).empty


def test_first_network_becoming_internal_moves_the_default_route() -> None:
    s = spec(network("front"), network("back"), container("web", "front", "back"))
    kernel = FakeKernel()
    target, allocs, _ = converge(kernel, s)
    gw_back = target.network("back").subnets[0].gateway.ip  # type: ignore[union-attr]
    inner = spec(network("front", internal=True), network("back"), container("web", "front", "back"))
    want = wanted(inner, allocs)
    p = plan(want, kernel.observed())
    routes = [a for a in p.actions if a.resource.kind is Kind.ROUTE]
    assert [(a.op, a.resource.key) for a in routes] == [(Op.UPDATE, "route:web/default")]
    assert set(routes[0].changes) == {
        Change("dev", "eth0", "eth1"),
        Change("gateway", str(target.network("front").subnets[0].gateway.ip), str(gw_back)),  # type: ignore[union-attr]
    }
    kernel.apply(p)
    assert plan(want, kernel.observed()).empty


# --------------------------------------------------------------------------- no-ops, determinism


def test_empty_plan_when_target_equals_observed() -> None:
    want = two_containers()
    assert plan(want, Observed(want)).empty
    assert plan(want, list(reversed(want))).empty
    assert plan((), ()).empty
    assert plan((), ()).summary() == "no changes"


def test_same_input_same_plan() -> None:
    s = spec(network("app"), container("web", "app"), container("db", "app", "bridge"))
    assert wanted(s) == wanted(s)
    kernel = applied(wanted(s, seed="old"))
    want = wanted(s, seed="new")  # every ID changes: deletes, creates and updates mixed
    first = plan(want, kernel.observed())
    assert first.count(Op.DELETE) and first.count(Op.CREATE) and first.count(Op.UPDATE)
    assert plan(want, kernel.observed()) == first
    for seed in range(5):
        rng = random.Random(seed)
        shuffled_want, shuffled_seen = list(want), list(kernel.observed().resources)
        rng.shuffle(shuffled_want)
        rng.shuffle(shuffled_seen)
        assert plan(shuffled_want, shuffled_seen) == first
    kernel.apply(first)
    assert plan(want, kernel.observed()).empty


def test_dependency_cycle_is_reported() -> None:
    a = Resource(Kind.FILE, "file:/a", {"path": "/a", "content": ""}, deps=("file:/b",))
    b = Resource(Kind.FILE, "file:/b", {"path": "/b", "content": ""}, deps=("file:/a",))
    with pytest.raises(ValueError, match="cycle"):
        plan([a, b], ())


def test_deps_outside_the_plan_are_assumed_present() -> None:
    want = wanted(spec(container("web", "bridge")))
    seen = [r for r in want if r.kind is not Kind.ROUTE]
    assert ops(plan(want, seen)) == [(Op.CREATE, "route:web/default")]


# --------------------------------------------------------------------------- properties


def _check_converged(kernel: FakeKernel, want: Sequence[Resource]) -> None:
    assert len({r.key for r in want}) == len(want), "desired_resources produced duplicate keys"
    again = plan(want, kernel.observed())
    assert again.empty, [f"{a.symbol} {a.resource.key} {a.changes}" for a in again.actions]
    assert kernel.resources == by_key(want)


@PROPERTY
@given(topologies())
def test_plan_applied_to_an_empty_kernel_converges(s: Spec) -> None:
    kernel = FakeKernel()
    _, _, want = converge(kernel, s)
    _check_converged(kernel, want)


@PROPERTY
@given(a=topologies(), b=topologies(), keep_allocations=st.booleans())
def test_plan_converges_from_any_other_topology(a: Spec, b: Spec, keep_allocations: bool) -> None:
    kernel = FakeKernel()
    _, allocs, _ = converge(kernel, a, seed="a")
    _, _, want = converge(kernel, b, allocs if keep_allocations else Allocations(), seed="b")
    _check_converged(kernel, want)


@PROPERTY
@given(a=topologies(), b=topologies(), data=st.data())
def test_plan_converges_after_a_crash_half_way(a: Spec, b: Spec, data: st.DataObject) -> None:
    """Level-triggered: apply part of a plan, stop, plan again from the kernel: converges."""
    kernel = FakeKernel()
    _, allocs, _ = converge(kernel, a, seed="a")
    want = wanted(b, allocs, seed="b")
    first = plan(want, kernel.observed())
    done = data.draw(st.integers(0, len(first.actions)), label="actions applied before the crash")
    for action in first.actions[:done]:
        kernel.act(action)
    kernel.apply(plan(want, kernel.observed()))
    _check_converged(kernel, want)


def tamper(r: Resource) -> Resource:
    """Change every attribute that can drift in place (only those the resource has)."""
    drift = {"up": False, "mtu": 9000, "content": "tampered\n", "gateway": "192.0.2.1", "master": None}
    return replace_attrs(r, **{k: v for k, v in drift.items() if k in r.attrs})


@PROPERTY
@given(b=topologies(), data=st.data())
def test_plan_repairs_drift(b: Spec, data: st.DataObject) -> None:
    """Someone deleted or changed objects behind netctl's back: the next plan repairs it."""
    kernel = FakeKernel()
    _, _, want = converge(kernel, b)
    present = sorted(kernel.resources)
    victims = data.draw(st.lists(st.sampled_from(present), max_size=4) if present else st.just([]))
    for key in victims:
        if key in kernel.resources:
            if data.draw(st.booleans(), label=f"delete {key}"):
                kernel.delete(key)
            else:
                kernel.resources[key] = tamper(kernel.resources[key])
    kernel.apply(plan(want, kernel.observed()))
    _check_converged(kernel, want)
