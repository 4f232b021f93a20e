"""controller/dns/records.py: who sees which names (pure, no sockets)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from topologies import container, network, resolved, spec, topologies

from controller.desired import uses_embedded_dns
from controller.dns import records
from controller.dns.records import HIDDEN, HOST_VIEW, MISS, Found, Pointer, Records
from controller.model import Attachment, Link, Spec, Target


def table(s: Spec) -> tuple[Target, Records]:
    target, _ = resolved(s)
    return target, records.build(target)


def addr(target: Target, name: str, network: str) -> str:
    c = target.container(name)
    assert c is not None
    ep = next(e for e in c.endpoints if e.network == network)
    assert ep.ipv4 is not None
    return str(ep.ipv4.ip)


def shop() -> Spec:
    s: Spec = spec(
        network("app", "10.1.0.0/24"),
        network("priv", "10.2.0.0/24"),
        network("lock", "10.3.0.0/24", internal=True),
        container("web", Attachment("app", aliases=("www", "pool")), hostname="webhost"),
        container("db", Attachment("app", aliases=("pool",)), "priv", links=(Link("web", "frontend"),)),
        container("secret", "priv"),
        container("vault", "lock"),
        container("legacy", "bridge"),
        container("both", "bridge", "app"),
        container("hostnet", "host"),
    )
    return s


def test_only_containers_on_user_defined_networks_use_the_embedded_server() -> None:
    target, t = table(shop())
    assert {v.name for v in t.containers} == {"web", "db", "secret", "vault", "both"}
    for c in target.containers:
        assert uses_embedded_dns(c, target) == (c.name in {"web", "db", "secret", "vault", "both"})


def test_names_short_ids_hostnames_aliases_and_network_suffix() -> None:
    target, t = table(shop())
    web = addr(target, "web", "app")
    web_c = target.container("web")
    assert web_c is not None
    for name in ("web", "WEB.", "www", "webhost", web_c.short_id, "web.app", "www.app"):
        assert t.lookup("db", name) == Found((web,)), name
    assert t.lookup("web", "web") == Found((web,))  # a container sees itself


def test_one_alias_on_several_containers_gives_every_address() -> None:
    target, t = table(shop())
    got = t.lookup("web", "pool")
    assert isinstance(got, Found)
    assert set(got.addresses) == {addr(target, "web", "app"), addr(target, "db", "app")}


def test_isolation_names_of_other_networks_are_nxdomain_not_forwarded() -> None:
    _, t = table(shop())
    assert t.lookup("web", "secret") is HIDDEN
    assert t.lookup("web", "secret.priv") is HIDDEN
    assert t.lookup("web", "db.priv") is HIDDEN  # db is visible, but not as a member of priv
    assert t.lookup("web", "legacy") is HIDDEN  # default-bridge names: never leaked upstream
    assert t.lookup("web", "example.com") is MISS
    assert isinstance(t.lookup("db", "secret"), Found)


def test_a_name_on_two_shared_networks_answers_from_the_first_attached() -> None:
    s = spec(
        network("a", "10.1.0.0/24"), network("b", "10.2.0.0/24"),
        container("x", "a", "b"), container("y", "b", "a"),
    )
    target, t = table(s)
    assert t.lookup("x", "y") == Found((addr(target, "y", "a"),))
    assert t.lookup("y", "x") == Found((addr(target, "x", "b"),))
    assert t.lookup("x", "y.b") == Found((addr(target, "y", "b"),))


def test_ptr_for_visible_addresses_only() -> None:
    target, t = table(shop())
    rev = ipaddress.ip_address(addr(target, "web", "app")).reverse_pointer
    assert t.lookup("db", rev) == Pointer("web.app")
    assert t.lookup("db", rev + ".") == Pointer("web.app")
    secret_rev = ipaddress.ip_address(addr(target, "secret", "priv")).reverse_pointer
    assert t.lookup("web", secret_rev) is HIDDEN  # ours, but not for web
    assert t.lookup("web", "10.0.0.10.in-addr.arpa") is MISS  # not one of our subnets
    assert t.lookup("web", "3.10.in-addr.arpa") is MISS  # not a full address


def test_link_aliases_are_for_the_linking_container_only() -> None:
    target, t = table(shop())
    assert t.lookup("db", "frontend") == Found((addr(target, "web", "app"),))
    assert t.lookup("web", "frontend") is MISS


def test_internal_only_containers_are_not_forwarded_and_dns_option_picks_upstreams() -> None:
    s = spec(
        network("lock", "10.3.0.0/24", internal=True), network("app", "10.1.0.0/24"),
        container("vault", "lock"), container("mixed", "lock", "app", dns=("192.0.2.53",)),
    )
    _, t = table(s)
    assert t.views["vault"].forward is False
    assert t.views["mixed"].forward is True
    assert t.views["mixed"].upstreams == ("192.0.2.53",)
    assert t.views[HOST_VIEW].forward is False


def test_default_bridge_gives_no_discovery_even_to_a_container_also_on_a_user_network() -> None:
    _, t = table(shop())
    assert t.views["both"].networks == ("app",)
    assert t.lookup("both", "legacy") is HIDDEN


def test_host_view_sees_every_network_and_the_hosts_file_lists_them() -> None:
    target, t = table(shop())
    assert isinstance(t.lookup(HOST_VIEW, "secret"), Found)
    assert isinstance(t.lookup(HOST_VIEW, "legacy"), Found)
    hosts = records.hosts_file(t)
    assert f"{addr(target, 'secret', 'priv')}\tsecret" in hosts
    assert "secret.priv" in hosts and "legacy.bridge" in hosts


def test_ipv6_addresses_are_published() -> None:
    from controller.model import IPAMConfig, NetworkSpec

    dual = NetworkSpec(name="dual", enable_ipv6=True,
                       ipam=(IPAMConfig(subnet="10.5.0.0/24"), IPAMConfig(subnet="fd00:5::/64")))
    _, t = table(spec(dual, container("a", "dual"), container("b", "dual")))
    got = t.lookup("a", "b")
    assert isinstance(got, Found) and "fd00:5::3" in got.addresses
    assert t.lookup("a", ipaddress.ip_address("fd00:5::3").reverse_pointer) == Pointer("b.dual")


def test_json_round_trip_and_generation_is_not_content() -> None:
    _, t = table(shop())
    text = records.to_json(t, 7)
    generation, back = records.from_json(text)
    assert generation == 7 and back == t
    assert records.same_records(text, records.to_json(t, 8))
    _, other = table(spec(network("app", "10.1.0.0/24"), container("web", "app")))
    assert not records.same_records(text, records.to_json(other, 7))


@settings(max_examples=60, deadline=None)
@given(topologies())
def test_a_container_sees_exactly_the_members_of_its_user_networks(s: Spec) -> None:
    target, t = table(s)
    builtin = {n.name for n in target.networks if n.builtin}
    for asker in t.containers:
        a = target.container(asker.name)
        assert a is not None
        mine = {e.network for e in a.endpoints} - builtin
        for other in target.containers:
            shared = mine & {e.network for e in other.endpoints}
            got = t.lookup(asker.name, other.name)
            if shared:
                assert isinstance(got, Found), (asker.name, other.name)
                nets = [n for n in (e.network for e in a.endpoints) if n in shared]
                ep = next(e for e in other.endpoints if e.network == nets[0])
                want = tuple(str(i.ip) for i in (ep.ipv4, ep.ipv6) if i is not None)
                assert set(want) <= set(got.addresses)
            else:
                assert got is HIDDEN, (asker.name, other.name)
    assert records.from_json(records.to_json(t, 1))[1] == t


def test_remote_endpoints_of_a_network_join_its_names_without_overriding_local_ones() -> None:
    target, _ = resolved(shop())
    web = addr(target, "web", "app")
    remote = [
        ("app", "far", "10.1.0.200"),  # on another host, same network
        ("app", "web", "10.1.0.201"),  # a name that exists locally: the local one wins
        ("priv", "hidden", "10.2.0.200"),  # another network: only its members see it
        ("nowhere", "ghost", "10.9.0.1"),  # a network this host does not have
    ]
    t = records.build(target, remote)
    assert t.lookup("web", "far") == Found(("10.1.0.200",))
    assert t.lookup("web", "far.app") == Found(("10.1.0.200",))
    assert t.lookup("web", "web") == Found((web,))
    assert t.lookup("web", "hidden") is HIDDEN
    assert t.lookup("secret", "hidden") == Found(("10.2.0.200",))
    assert t.lookup("web", "ghost") is MISS
    reverse = ipaddress.ip_address("10.1.0.200").reverse_pointer
    assert t.lookup("web", reverse) == Pointer("far.app")
    local_reverse = ipaddress.ip_address(web).reverse_pointer
    assert t.lookup("db", local_reverse) == Pointer("web.app")
    assert records.build(target) == records.build(target, ())
