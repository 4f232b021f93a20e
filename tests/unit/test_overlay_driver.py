"""The overlay driver and its resources, pure: what a host should have, planned against a
simulated kernel (order, lifetimes, convergence)."""

from __future__ import annotations

import dataclasses

import pytest
from fake_kernel import FakeKernel
from topologies import container, resolved, spec

from controller import names, resources
from controller.desired import desired_resources
from controller.drivers import get, overlay
from controller.drivers.overlay import Peer
from controller.errors import UserError
from controller.model import Kind, NetworkSpec, Observed, Op, Resource, Target
from controller.plan import plan

VNI = {overlay.VNI_OPTION: "4100"}


def target(*containers: str) -> Target:
    ov = NetworkSpec(name="ov", driver="overlay", options=VNI)
    t, _ = resolved(spec(ov, *(container(c, "ov") for c in containers)))
    return t


def test_an_overlay_network_is_a_namespace_with_a_bridge_and_a_vxlan_device() -> None:
    t = target("web", "db")
    net = t.network("ov")
    assert net is not None and net.scope == "global" and net.mtu == 1450
    out = get("overlay").network_resources(net, t.endpoints("ov"))
    assert len(out) == 1
    (ov,) = out
    short = net.id[:12]
    assert ov.kind is Kind.VXLAN and ov.key == f"overlay:{short}"
    assert ov.attrs == {
        "netns": short, "bridge": f"ov-{short}", "vxlan": f"vx-{short}", "vni": 4100, "port": 4789,
        "learning": False, "proxy": True, "mtu": 1450, "up": True, "alias": f"netctl:{net.id}",
        "mac": names.bridge_mac(net.id),
    }
    assert {"vni", "port", "learning", "proxy"} <= ov.immutable


def test_endpoints_are_ports_whose_alias_names_their_container_end() -> None:
    t = target("web")
    net, ep = t.network("ov"), t.endpoints("ov")[0]
    assert net is not None
    (port,) = get("overlay").endpoint_resources(net, ep)
    assert port.kind is Kind.OVPORT and port.key == resources.link_key(None, ep.host_ifname)
    assert port.attrs["master"] == net.device and port.attrs["mtu"] == 1450
    assert overlay.port_peer(port.attrs["alias"]) == ("web", "eth0")
    assert port.parent == f"overlay:{net.id[:12]}"
    assert overlay.port_peer("netctl:abc") == ("", "")
    # The container end depends on the port exactly as it would on a host veth.
    inner = next(r for r in desired_resources(t) if r.kind is Kind.NSLINK)
    assert inner.parent == port.key
    # No gateway on a layer-2 segment: no default route through the overlay.
    assert ep.gateway4 is None
    assert not [r for r in desired_resources(t) if r.kind is Kind.ROUTE and r.netns == "web"]


def test_no_vni_means_no_cluster_store() -> None:
    ov = NetworkSpec(name="ov", driver="overlay")
    t, _ = resolved(spec(ov))
    net = t.network("ov")
    assert net is not None
    with pytest.raises(UserError, match="cluster store"):
        get("overlay").network_resources(net, ())


def test_peer_entries() -> None:
    peers = [Peer("10.0.0.3", "02:42:0a:00:00:03", "192.0.2.2"),
             Peer("10.0.0.4", "02:42:0a:00:00:04", "192.0.2.3")]
    out = overlay.peer_resources("a" * 64, [*peers, peers[0]])  # duplicates collapse
    assert [r.key for r in out] == [
        "fdb:vx-aaaaaaaaaaaa/02:42:0a:00:00:03", "neigh:vx-aaaaaaaaaaaa/10.0.0.3",
        "fdb:vx-aaaaaaaaaaaa/02:42:0a:00:00:04", "neigh:vx-aaaaaaaaaaaa/10.0.0.4",
    ]
    assert all(r.parent == "overlay:aaaaaaaaaaaa" for r in out)
    assert out[0].attrs["dst"] == "192.0.2.2" and "dst" in out[0].immutable


def converge(kernel: FakeKernel, wanted: tuple[Resource, ...] | list[Resource]) -> list[tuple[Op, str]]:
    p = plan(wanted, kernel.observed())
    kernel.apply(p)
    assert plan(wanted, kernel.observed()).empty
    return [(a.op, a.resource.key) for a in p.actions]


def test_plans_against_a_simulated_kernel() -> None:
    t = target("web", "db")
    net = t.network("ov")
    assert net is not None
    kernel = FakeKernel()
    peer = Peer("10.0.0.9", "02:42:0a:00:00:09", "192.0.2.9")
    wanted = [*desired_resources(t), *overlay.peer_resources(net.id, [peer])]
    ops = converge(kernel, wanted)
    keys = [k for _, k in ops]
    ov_key = f"overlay:{net.id[:12]}"
    assert keys.index(ov_key) < min(keys.index(k) for k in keys if k.startswith(("fdb:", "neigh:")))
    # A peer moves to another host: its FDB entry is replaced, its neighbour entry stays.
    moved = dataclasses.replace(peer, vtep="192.0.2.10")
    ops = converge(kernel, [*desired_resources(t), *overlay.peer_resources(net.id, [moved])])
    fdb_key = resources.fdb_key(f"vx-{net.id[:12]}", peer.mac)
    assert ops == [(Op.DELETE, fdb_key), (Op.CREATE, fdb_key)]
    # A peer goes away: only its entries go.
    ops = converge(kernel, list(desired_resources(t)))
    assert sorted(op for op, _ in ops) == [Op.DELETE, Op.DELETE]
    # The VNI changes (the network was recreated in the cluster): everything is rebuilt.
    t2 = dataclasses.replace(t, networks=tuple(
        dataclasses.replace(n, options={**n.options, overlay.VNI_OPTION: "4200"}) if n.name == "ov" else n
        for n in t.networks
    ))
    ops = converge(kernel, list(desired_resources(t2)))
    assert (Op.DELETE, ov_key) in ops and (Op.CREATE, ov_key) in ops
    assert {k for op, k in ops if op is Op.CREATE} >= {r.key for r in desired_resources(t2)
                                                        if r.kind in (Kind.OVPORT, Kind.NSLINK)}


def test_observed_as_wanted_is_an_empty_plan() -> None:
    t = target("web")
    wanted = desired_resources(t)
    assert plan(wanted, Observed(wanted)).empty
