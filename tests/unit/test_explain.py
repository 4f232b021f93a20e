"""`netctl explain`'s pure layer: verdicts and the setting behind each, over the firewall
test topology (tests/kernel/test_explain.py checks the same verdicts against real packets)."""

from __future__ import annotations

import dataclasses

import pytest
from topologies import DEFAULT_BRIDGE, container, network, resolved, spec

from controller import resources
from controller.errors import UserError
from controller.explain import Verdict, explain, parse_destination, with_kernel
from controller.model import Attachment, Link, PortSpec, Protocol, Target

ICC_OFF = {"com.docker.network.bridge.enable_icc": "false"}


def topology() -> Target:
    quiet_default = dataclasses.replace(DEFAULT_BRIDGE, options={**DEFAULT_BRIDGE.options, **ICC_OFF})
    s = spec(
        network("front", "10.10.1.0/24"),
        network("back", "10.10.2.0/24"),
        network("quiet", "10.10.3.0/24", options=ICC_OFF),
        network("vault", "10.10.4.0/24", internal=True),
        container("f1", Attachment("front", "10.10.1.10")),
        container("f2", Attachment("front", "10.10.1.11")),
        container("b1", Attachment("back", "10.10.2.10")),
        container("dual", Attachment("front", "10.10.1.20"), Attachment("back", "10.10.2.20")),
        container("q1", Attachment("quiet", "10.10.3.10"), links=(Link("q2", "db"),)),
        container("q2", Attachment("quiet", "10.10.3.11"), expose=((8000, Protocol.TCP),)),
        container("v1", Attachment("vault", "10.10.4.10")),
        container("v2", Attachment("vault", "10.10.4.11")),
        container("web", Attachment("front", "10.10.1.30"),
                  ports=(PortSpec(8000, 8080), PortSpec(8000, 9090, "127.0.0.1"),
                         PortSpec(8000, 5353, None, Protocol.UDP))),
        container("d1", Attachment("bridge", "172.17.0.10"), links=(Link("d2", "db"),)),
        container("d2", Attachment("bridge", "172.17.0.11"), expose=((5432, Protocol.TCP),)),
        container("d3", Attachment("bridge", "172.17.0.12")),
    )
    s = dataclasses.replace(s, networks=(quiet_default, *s.networks[1:]))
    return resolved(s)[0]


def why(v: Verdict) -> str:
    return " | ".join(v.reasons)


def test_one_network_reaches_itself_and_two_are_isolated() -> None:
    t = topology()
    assert explain(t, "f1", "10.10.1.11:8000").reachable
    v = explain(t, "f1", "10.10.2.10:8000")
    assert not v.reachable and "isolated: front and back are different bridge networks" in why(v)
    assert explain(t, "dual", "10.10.2.10:8000").reachable and explain(t, "dual", "10.10.1.10").reachable
    assert not explain(t, "b1", "10.10.1.20:8000").reachable  # dual's front address, from back


def test_icc_off_and_links() -> None:
    t = topology()
    v = explain(t, "q1", "10.10.3.11:8000")
    assert not v.reachable and "enable_icc is false on quiet" in why(v)
    assert "only a DNS alias" in why(v)  # a link on a user-defined network opens nothing
    # the default bridge with ICC off: a link opens the linked container's exposed ports
    assert explain(t, "d1", "172.17.0.11:5432").reachable
    v = explain(t, "d1", "172.17.0.11:80")
    assert not v.reachable and "opens only d2's exposed ports (5432/tcp)" in why(v)
    assert not explain(t, "d3", "172.17.0.11:5432").reachable


def test_internal_networks_have_no_way_in_or_out() -> None:
    t = topology()
    assert explain(t, "v1", "10.10.4.11:8000").reachable
    v = explain(t, "v1", "198.18.0.2:8000")
    assert not v.reachable and "no way out" in why(v)
    v = explain(t, "f1", "10.10.4.10:8000")
    assert not v.reachable and "vault is internal" in why(v)
    out = explain(t, "f1", "198.18.0.2:8000")
    assert out.reachable and any("masqueraded" in s for s in out.steps)


def test_published_ports_from_everywhere() -> None:
    t = topology()
    outside = explain(t, "198.18.0.2", "198.18.0.1:8080")
    assert outside.reachable and "DNAT 198.18.0.1:8080/tcp -> 10.10.1.30:8000" in outside.steps[0]
    v = explain(t, "198.18.0.2", "host:9090")
    assert not v.reachable and "published on 127.0.0.1 only" in why(v)
    assert explain(t, "host", "127.0.0.1:9090").reachable
    assert explain(t, "b1", "host:8080").reachable  # from another network, through the DNAT
    hairpin = explain(t, "web", "host:8080")
    assert hairpin.reachable and any("hairpin" in s for s in hairpin.steps)
    assert explain(t, "198.18.0.2", "host:5353/udp").reachable
    assert not explain(t, "198.18.0.2", "host:5353").reachable  # tcp: not published
    v = explain(t, "198.18.0.2", "10.10.1.10:8000")
    assert not v.reachable and "Docker 28's raw-table rule" in why(v)
    assert explain(t, "host", "10.10.4.10:8000").reachable  # the host reaches even internal ones
    assert not explain(t, "v1", "host:8080").reachable


def test_names_resolve_as_the_source_would() -> None:
    t = topology()
    v = explain(t, "f1", "f2:8000")
    assert v.reachable and v.resolved == "10.10.1.11" and "embedded DNS" in v.steps[0]
    v = explain(t, "f1", "b1:8000")
    assert not v.reachable and "NXDOMAIN" in why(v)
    v = explain(t, "d1", "d2:5432")  # the default bridge: a hosts line from the link
    assert v.reachable and "/etc/hosts" in v.steps[0]
    assert "NXDOMAIN" in why(explain(t, "d3", "d2:5432"))


def test_destinations_parse_and_bad_input_is_a_user_error() -> None:
    assert parse_destination("db") == ("db", None, Protocol.TCP)
    assert parse_destination("host:53/udp") == ("host", 53, Protocol.UDP)
    assert parse_destination("[fd00::5]:80") == ("fd00::5", 80, Protocol.TCP)
    assert parse_destination("fd00::5") == ("fd00::5", None, Protocol.TCP)
    t = topology()
    for src, dst in (("nosuch", "f1"), ("f1", "nosuch:80"), ("f1", "f2:99999"), ("f1", "f2:80/icmp")):
        with pytest.raises(UserError):
            explain(t, src, dst)


def test_what_the_kernel_lacks_blocks_a_path_that_rests_on_it() -> None:
    t = topology()
    f1 = next(c for c in t.containers if c.name == "f1")
    out = explain(t, "f1", "198.18.0.2:80")
    assert (resources.route_key(f1.netns, "default"), "f1's default route") in out.depends
    assert with_kernel(out, {"unrelated"}).reachable
    broken = with_kernel(explain(t, "f1", "198.18.0.2:80"), {resources.route_key(f1.netns, "default")})
    assert not broken.reachable and broken.reasons == [
        "f1's default route is missing in the kernel (drift: `netctl apply` restores it)"]
    published = explain(t, "198.18.0.2", "198.18.0.1:8080")
    assert ("nft:element/dnat4any/tcp . 8080", "the DNAT of 8080/tcp") in published.depends
    assert not with_kernel(published, {"nft:element/dnat4any/tcp . 8080"}).reachable
    # on the same network nothing goes through a default route
    assert explain(t, "f1", "f2").depends == []
