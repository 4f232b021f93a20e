"""resolve -> desired_resources -> etcfiles/render, on the seed article's tour and around it."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from fake_kernel import FakeKernel
from topologies import DEFAULT_BRIDGE, container, converge, ids, network, resolved, spec, wanted

from controller import etcfiles, listing, planview, render
from controller.desired import desired_resources
from controller.model import (
    Attachment,
    ContainerTarget,
    Kind,
    Link,
    Op,
    PortSpec,
    Protocol,
    Resource,
    Spec,
    Target,
)
from controller.plan import plan
from controller.resolve import HostFacts, resolve

LOCALHOST = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def tour() -> Spec:
    """examples/seed-tour.yaml, plus a container on the host network."""
    return spec(
        container("container1", "bridge"),
        container("container2", "bridge"),
        container("networkdisabled", "none"),
        network("isolated_nw"),
        container("container3", "isolated_nw"),
        container("hostnet", "host"),
    )


@pytest.fixture
def target() -> Target:
    return resolved(tour())[0]


def the(target: Target, name: str) -> ContainerTarget:
    c = target.container(name)
    assert c is not None
    return c


def by_key(rs: tuple[Resource, ...]) -> dict[str, Resource]:
    return {r.key: r for r in rs}


def content(rs: tuple[Resource, ...], path: str) -> str:
    return str(by_key(rs)[f"file:{path}"].attrs["content"])


# --------------------------------------------------------------------------- the seed tour


def test_default_bridge(target: Target) -> None:
    bridge = target.network("bridge")
    assert bridge is not None
    assert (bridge.driver, bridge.device, bridge.scope, bridge.mtu, bridge.builtin) == (
        "bridge",
        "netctl0",
        "local",
        1500,
        True,
    )
    (sub,) = bridge.subnets
    assert str(sub.subnet) == "172.17.0.0/16"
    assert str(sub.gateway) == "172.17.0.1/16"
    assert len(bridge.id) == 64 and bridge.short_id == bridge.id[:12]


def test_host_and_none_networks_have_no_device_and_no_subnet(target: Target) -> None:
    for name in ("host", "none"):
        n = target.network(name)
        assert n is not None
        assert (n.device, n.subnets) == (None, ())


def test_containers_on_the_default_bridge(target: Target) -> None:
    for name, ip, mac in (
        ("container1", "172.17.0.2/16", "02:42:ac:11:00:02"),
        ("container2", "172.17.0.3/16", "02:42:ac:11:00:03"),
    ):
        c = the(target, name)
        (ep,) = c.endpoints
        assert (ep.network, ep.ifname, str(ep.ipv4), ep.mac) == ("bridge", "eth0", ip, mac)
        assert str(ep.gateway4) == "172.17.0.1"
        assert ep.host_ifname.startswith("veth") and len(ep.host_ifname) <= 15
        assert c.netns == name


def test_user_network_takes_the_next_free_pool(target: Target) -> None:
    n = target.network("isolated_nw")
    assert n is not None
    assert str(n.subnets[0].subnet) == "172.18.0.0/16"
    assert n.device == f"br-{n.id[:12]}"
    (ep,) = the(target, "container3").endpoints
    assert (str(ep.ipv4), ep.mac, str(ep.gateway4)) == ("172.18.0.2/16", "02:42:ac:12:00:02", "172.18.0.1")


def test_none_container_has_a_namespace_and_no_endpoints(target: Target) -> None:
    c = the(target, "networkdisabled")
    assert c.netns == "networkdisabled" and c.endpoints == () and c.primary is None
    rs = desired_resources(target)
    mine = {r.kind for r in rs if r.key.startswith(("netns:networkdisabled", "link:networkdisabled/"))}
    assert mine == {Kind.NETNS}
    assert content(rs, "/etc/netns/networkdisabled/hosts") == LOCALHOST


def test_host_container_has_no_namespace_and_no_resources(target: Target) -> None:
    c = the(target, "hostnet")
    assert c.netns is None and c.endpoints == ()
    assert not [r for r in desired_resources(target) if "hostnet" in r.key or r.netns == "hostnet"]


def test_tour_resources(target: Target) -> None:
    rs = by_key(desired_resources(target))
    c1 = the(target, "container1").endpoints[0]
    assert rs["link:/netctl0"].attrs["mtu"] == 1500
    assert "addr:/netctl0/172.17.0.1/16" in rs
    veth = rs[f"link:/{c1.host_ifname}"]
    assert (veth.kind, veth.attrs["master"], veth.attrs["peer_netns"], veth.attrs["peer_ifname"]) == (
        Kind.VETH,
        "netctl0",
        "container1",
        "eth0",
    )
    assert set(veth.deps) == {"netns:container1", "link:/netctl0"}
    assert rs["link:container1/eth0"].attrs["mac"] == "02:42:ac:11:00:02"
    assert rs["link:container1/eth0"].parent == veth.key
    assert rs["addr:container1/eth0/172.17.0.2/16"].parent == "link:container1/eth0"
    route = rs["route:container1/default"]
    assert dict(route.attrs) == {"dst": "default", "gateway": "172.17.0.1", "dev": "eth0"}
    assert route.parent == "addr:container1/eth0/172.17.0.2/16"
    assert sum(1 for r in rs.values() if r.kind is Kind.NETNS) == 4  # not the host container


def test_tour_converges_on_a_fake_kernel() -> None:
    kernel = FakeKernel()
    _, allocs, want = converge(kernel, tour())
    assert plan(want, kernel.observed()).empty
    _, _, again = converge(kernel, tour(), allocs, seed="unused")
    assert again == want


# --------------------------------------------------------------------------- interfaces and routes


def test_interfaces_follow_the_order_of_networks() -> None:
    s = spec(network("front"), network("back"), container("web", "back", "front", "bridge"))
    target, _ = resolved(s)
    web = the(target, "web")
    assert [(e.ifname, e.network) for e in web.endpoints] == [
        ("eth0", "back"),
        ("eth1", "front"),
        ("eth2", "bridge"),
    ]
    assert web.primary is web.endpoints[0]
    routes = [r for r in desired_resources(target) if r.kind is Kind.ROUTE]
    assert len(routes) == 1
    back_gw = target.network("back").subnets[0].gateway  # type: ignore[union-attr]
    assert dict(routes[0].attrs) == {"dst": "default", "gateway": str(back_gw.ip), "dev": "eth0"}  # type: ignore[union-attr]


def test_internal_network_gives_no_default_route() -> None:
    s = spec(network("secret", internal=True), container("vault", "secret"))
    target, _ = resolved(s)
    (ep,) = the(target, "vault").endpoints
    assert ep.gateway4 is None
    assert ep.ipv4 is not None  # still addressed
    rs = desired_resources(target)
    assert not [r for r in rs if r.kind is Kind.ROUTE]
    assert f"addr:vault/eth0/{ep.ipv4}" in by_key(rs)


def test_default_route_skips_internal_networks() -> None:
    s = spec(network("secret", internal=True), container("vault", "secret", "bridge"))
    rs = wanted(s)
    routes = [r for r in rs if r.kind is Kind.ROUTE]
    assert [dict(r.attrs) for r in routes] == [{"dst": "default", "gateway": "172.17.0.1", "dev": "eth1"}]


def test_container_without_networks_is_like_none() -> None:
    target, _ = resolved(spec(container("lonely")))
    assert the(target, "lonely").endpoints == ()
    assert the(target, "lonely").netns == "lonely"


def test_mtu_option_reaches_every_link() -> None:
    s = spec(network("jumbo", options={"com.docker.network.driver.mtu": "9000"}), container("a", "jumbo"))
    rs = wanted(s)
    mtus = {r.kind: r.attrs["mtu"] for r in rs if "mtu" in r.attrs and r.attrs["name"] != "netctl0"}
    assert mtus == {Kind.BRIDGE: 9000, Kind.VETH: 9000, Kind.NSLINK: 9000}


def test_endpoint_ids_and_names_are_stable() -> None:
    s = tour()
    first, allocs = resolved(s)
    second, _ = resolved(s, allocs, seed="different")
    assert first == second
    assert desired_resources(first) == desired_resources(second)


def test_resolve_is_pure() -> None:
    s = tour()
    assert resolved(s) == resolved(s)
    assert desired_resources(resolved(s)[0]) == desired_resources(resolved(s)[0])


def test_ids_and_created_for_every_object() -> None:
    target, allocs = resolved(tour())
    assert set(allocs.ids) == {("network", n.name) for n in target.networks} | {
        ("container", c.name) for c in target.containers
    }
    assert set(allocs.created.values()) == {"2024-05-01T12:00:00Z"}
    assert len(set(allocs.ids.values())) == len(allocs.ids)
    later, kept = resolve(tour(), allocs, HostFacts(), "2030-01-01T00:00:00Z", new_id=ids("x"))
    assert later.network("bridge").created == "2024-05-01T12:00:00Z"  # type: ignore[union-attr]
    assert kept == allocs


# --------------------------------------------------------------------------- /etc/hosts and resolv.conf


def test_hosts_file_defaults_to_the_short_id(target: Target) -> None:
    c1 = the(target, "container1")
    text = content(desired_resources(target), "/etc/netns/container1/hosts")
    assert text == LOCALHOST + f"172.17.0.2\t{c1.id[:12]}\n"
    assert c1.hostname == c1.short_id and len(c1.hostname) == 12


def test_hosts_file_with_hostname_extra_hosts_and_links() -> None:
    s = spec(
        container("db", "bridge"),
        container(
            "web",
            "bridge",
            hostname="web.local",
            extra_hosts=(("mirror", "192.0.2.7"),),
            links=(Link("db", "database"),),
        ),
    )
    target, _ = resolved(s)
    db = the(target, "db")
    text = etcfiles.render_hosts(the(target, "web"), target)
    assert text == (  # Docker's order: the link (alias hostname name) before the own line
        LOCALHOST
        + f"172.17.0.2\tdatabase {db.short_id} db\n"
        + "172.17.0.3\tweb.local\n"
        + "192.0.2.7\tmirror\n"
    )


def test_links_on_a_user_defined_network_write_no_hosts_line() -> None:
    s = spec(network("app"), container("db", "app"), container("web", "app", links=(Link("db", "database"),)))
    target, _ = resolved(s)
    assert "database" not in etcfiles.render_hosts(the(target, "web"), target)


def test_hosts_file_lists_every_address() -> None:
    s = spec(network("front"), container("web", "bridge", "front", hostname="web"))
    target, _ = resolved(s)
    text = etcfiles.render_hosts(the(target, "web"), target)
    assert text == LOCALHOST + "172.17.0.2\tweb\n172.18.0.2\tweb\n"


def test_resolv_conf_uses_host_resolvers_else_google() -> None:
    s = spec(container("a", "bridge"), container("b", "bridge", dns=("10.0.0.53",), dns_search=("corp",)))
    host = HostFacts(resolvers=("192.0.2.53",), search=("example.org",), options=("timeout:1", "rotate"))
    target, _ = resolve_with_host(s, host)
    assert etcfiles.render_resolv(the(target, "a"), target, False) == (
        "search example.org\nnameserver 192.0.2.53\noptions timeout:1 rotate\n"
    )
    assert etcfiles.render_resolv(the(target, "a"), target, True) == (
        "search example.org\nnameserver 127.0.0.11\noptions timeout:1 rotate ndots:0\n"
    )
    assert etcfiles.render_resolv(the(target, "b"), target, False) == (
        "search corp\nnameserver 10.0.0.53\noptions timeout:1 rotate\n"
    )
    bare, _ = resolved(s)
    assert etcfiles.render_resolv(the(bare, "a"), bare, False) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert etcfiles.render_resolv(the(bare, "a"), bare, True) == "nameserver 127.0.0.11\noptions ndots:0\n"
    mine = spec(container("c", "bridge", dns_options=("ndots:3", "edns0")))
    t, _ = resolve_with_host(mine, host)
    assert etcfiles.render_resolv(the(t, "c"), t, True).endswith("options ndots:3 edns0\n")


def resolve_with_host(s: Spec, host: HostFacts) -> tuple[Target, object]:
    return resolved(s, host=host)


def test_host_resolvers_drop_loopback() -> None:
    text = ("# c\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # x\nnameserver ::1\n"
            "search a.example b.example\noptions edns0 trust-ad\noptions timeout:2\n")
    assert etcfiles.host_resolvers(text) == (
        ("10.0.0.2",), ("a.example", "b.example"), ("edns0", "trust-ad", "timeout:2"))


# --------------------------------------------------------------------------- render


def test_plan_view_lines_and_summary() -> None:
    s = spec(network("app"), container("web", "app"), container("db", "app"))
    kernel = FakeKernel()
    _, allocs, _ = converge(kernel, s)
    changed = spec(
        network("app", options={"com.docker.network.driver.mtu": "1400"}),
        container("web", "app", hostname="web"),
        container("cache", "app"),
    )
    p = plan(wanted(changed, allocs), kernel.observed())
    text = planview.plan_view(p, resolved(changed, allocs)[0])
    lines = text.splitlines()
    assert text.endswith("\n")
    assert "  - namespace db" in lines and "  + namespace cache" in lines
    assert any(line.startswith("  ~ bridge br-") and line.endswith(": mtu 1500 -> 1400") for line in lines)
    assert "  ~ file /etc/netns/web/hosts" in lines  # and its unified diff beneath
    assert any(line.strip().startswith("+") and line.strip().endswith("\tweb") for line in lines)
    counts = p.count(Op.CREATE), p.count(Op.UPDATE), p.count(Op.DELETE)
    assert all(counts)
    assert lines[-1] == "Plan: {} to create, {} to update, {} to delete.".format(*counts)
    assert "# container db will be destroyed" in lines and "# container cache will be created" in lines


def test_plan_view_empty() -> None:
    assert planview.plan_view(plan((), ()), resolved(spec())[0]) == "no changes\n"


def test_describe(target: Target) -> None:
    rs = {k: render.describe(r) for k, r in by_key(desired_resources(target)).items()}
    c1 = the(target, "container1").endpoints[0]
    assert rs["link:/netctl0"] == "bridge netctl0"
    assert rs["netns:container1"] == "namespace container1"
    assert rs[f"link:/{c1.host_ifname}"] == f"veth {c1.host_ifname} (container1/eth0 -> netctl0)"
    assert rs["link:container1/eth0"] == "interface container1/eth0 (02:42:ac:11:00:02)"
    assert rs["addr:container1/eth0/172.17.0.2/16"] == "address container1/eth0 172.17.0.2/16"
    assert rs["addr:/netctl0/172.17.0.1/16"] == "address netctl0 172.17.0.1/16"
    assert rs["route:container1/default"] == "route container1/default via 172.17.0.1 dev eth0"
    assert rs["file:/etc/netns/container1/hosts"] == "file /etc/netns/container1/hosts"


def test_plan_json() -> None:
    p = plan(wanted(spec(container("a", "bridge"))), ())
    out = render.plan_json(p)
    assert len(out) == len(p.actions)
    assert out[0] == {
        "op": "create", "kind": "netns", "key": "netns:a", "netns": None,
        "attrs": {"name": "a", "ipv6": False},
    }


def test_table_layout() -> None:
    text = render.table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], [["abc", "bridge", "bridge", "local"],
                                                                    ["0123456789ab", "x", "host", "local"]])
    assert text == (
        "NETWORK ID     NAME     DRIVER   SCOPE\n"
        "abc            bridge   bridge   local\n"
        "0123456789ab   x        host     local\n"
    )
    assert render.table(["A", "B"], [["x", ""]]) == "A   B\nx\n"  # no trailing spaces


def test_network_ls_rows(target: Target) -> None:
    rows = [list(r.values())[:4] for r in listing.network_records(target)]  # ID, Name, Driver, Scope
    assert [r[1:] for r in rows] == [
        ["bridge", "bridge", "local"],
        ["host", "host", "local"],
        ["isolated_nw", "bridge", "local"],
        ["none", "null", "local"],  # Docker names the driver of `none` null
    ]
    assert all(len(r[0]) == 12 for r in rows)


def test_container_ls_rows() -> None:
    s = dataclasses.replace(
        tour(),
        containers=(
            *tour().containers,
            container(
                "pub", "bridge",
                ports=(PortSpec(80, 8080), PortSpec(53, 5353, "127.0.0.1", Protocol.UDP),
                       *(PortSpec(9000 + i, 9000 + i) for i in range(3)), PortSpec(9005, 9005)),
            ),
        ),
    )
    target, _ = resolved(s)
    rows = {r["Name"]: [r["Networks"], r["IPv4"], r["Ports"]] for r in listing.container_records(target)}
    assert rows["container1"] == ["bridge", "172.17.0.2", ""]
    assert rows["networkdisabled"] == ["none", "", ""]
    assert rows["hostnet"] == ["host", "", ""]
    assert rows["pub"] == ["bridge", "172.17.0.4", "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp, "
                           "0.0.0.0:9000-9002->9000-9002/tcp, 0.0.0.0:9005->9005/tcp"]


def test_inspect_takes_endpoint_facts_from_the_kernel() -> None:
    kernel = FakeKernel()
    target, _, _ = converge(kernel, tour())
    info = render.network_inspect(target, kernel.observed(), "bridge")
    assert info["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
    c1 = the(target, "container1")
    assert info["Containers"][c1.id] == {
        "Name": "container1",
        "EndpointID": c1.endpoints[0].id,
        "MacAddress": "02:42:ac:11:00:02",
        "IPv4Address": "172.17.0.2/16",
        "IPv6Address": "",
    }
    c = render.container_inspect(target, kernel.observed(), "container3")
    net = c["NetworkSettings"]["Networks"]["isolated_nw"]
    assert (net["IPAddress"], net["IPPrefixLen"], net["Gateway"], net["MacAddress"]) == (
        "172.18.0.2",
        16,
        "172.18.0.1",
        "02:42:ac:12:00:02",
    )
    assert c["NetworkSettings"]["SandboxKey"] == "/run/netns/container3"
    assert c["Config"]["Hostname"] == the(target, "container3").short_id
    # what the kernel does not have is shown empty, as Docker does for a stopped container
    empty = render.container_inspect(target, FakeKernel().observed(), "container3")
    assert empty["NetworkSettings"]["Networks"]["isolated_nw"]["IPAddress"] == ""


def test_host_facts_routes_push_the_pool() -> None:
    target, _ = resolved(tour(), host=HostFacts(routes=(ipaddress.ip_network("172.18.0.0/16"),)))
    assert str(target.network("isolated_nw").subnets[0].subnet) == "172.19.0.0/16"  # type: ignore[union-attr]


def test_default_bridge_spec_is_the_shipped_manifest() -> None:
    assert DEFAULT_BRIDGE.options["com.docker.network.bridge.name"] == "netctl0"
    assert ids("a")() != ids("b")()
    assert container("x").networks == ()
    assert container("y", "bridge").networks == (Attachment("bridge"),)


def test_static_addresses_outside_the_range_and_inside_it_are_never_handed_out() -> None:
    from controller import load
    from controller.model import Allocations
    from controller.pipeline import build

    text = """
apiVersion: netctl/v1
kind: Network
metadata: {name: front}
spec: {ipam: {config: [{subnet: 10.1.0.0/24, ipRange: 10.1.0.128/30}]}}
""" + "".join(
        f"---\napiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {n}}}\n"
        f"spec: {{networks: [{{name: front{', ipv4Address: ' + ip if ip else ''}}}]}}\n"
        for n, ip in [("a", ""), ("outside", "10.1.0.5"), ("inside", "10.1.0.129"), ("b", ""), ("c", "")]
    )
    target, _ = resolve(build(load.parse_text(text, "t.yaml")), Allocations(), HostFacts(), "now")
    got = {c.name: str(c.endpoints[0].ipv4.ip) for c in target.containers if c.endpoints[0].ipv4}
    assert got["outside"] == "10.1.0.5" and got["inside"] == "10.1.0.129"
    assert {got["a"], got["b"], got["c"]} == {"10.1.0.128", "10.1.0.130", "10.1.0.131"}


def test_container_inspect_has_dockers_network_settings() -> None:
    s = spec(
        network("app", "10.5.0.0/24"),
        container("db", "app"),
        container("web", "bridge", Attachment("app", ipv4_address="10.5.0.9", aliases=("www",)),
                  links=(Link("db", "database"),)),
    )
    kernel = FakeKernel()
    target, _, _ = converge(kernel, s)
    web = the(target, "web")
    settings = render.container_inspect(target, kernel.observed(), "web")["NetworkSettings"]
    app, bridge = settings["Networks"]["app"], settings["Networks"]["bridge"]
    assert app["IPAMConfig"] == {"IPv4Address": "10.5.0.9"} and bridge["IPAMConfig"] is None
    assert app["Aliases"] == ["www"] and bridge["Aliases"] is None
    assert app["Links"] == ["db:database"] and bridge["Links"] is None
    assert app["DNSNames"] == ["web", "www", web.short_id] and bridge["DNSNames"] is None
    assert app["DriverOpts"] is None and app["IPAddress"] == "10.5.0.9"
    # the top-level fields are the default bridge's endpoint
    assert settings["IPAddress"] == bridge["IPAddress"] == "172.17.0.2"
    assert settings["Gateway"] == "172.17.0.1" and settings["MacAddress"] == bridge["MacAddress"]
    assert len(settings["SandboxID"]) == 64 and settings["SecondaryIPAddresses"] is None
    # a user subnet without a gateway shows none; IPAM options are null (Docker)
    info = render.network_inspect(target, kernel.observed(), "app")
    assert info["IPAM"]["Config"] == [{"Subnet": "10.5.0.0/24"}] and info["IPAM"]["Options"] is None
