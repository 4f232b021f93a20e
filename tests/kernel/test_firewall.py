"""Docker's bridge firewall semantics, checked with real TCP/UDP inside sandbox hosts, for
both firewall backends (every test runs with iptables and with nftables).

Host A runs netctl; `outside` is a second sandbox host wired to A's uplink (198.18.0.1 <->
198.18.0.2), standing in for another machine on the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.manifests import container, manifest, network
from tests.sandbox_host import NETCTL, SandboxHost, probe, serve, wire

A_IP, OUT_IP = "198.18.0.1", "198.18.0.2"
PORT = 8000

MATRIX = manifest(
    network("front", "10.10.1.0/24"),
    network("back", "10.10.2.0/24"),
    network("quiet", "10.10.3.0/24", options={"com.docker.network.bridge.enable_icc": "false"}),
    network("vault", "10.10.4.0/24", internal=True),
    container("f1", ("front", "10.10.1.10")),
    container("f2", ("front", "10.10.1.11")),
    container("b1", ("back", "10.10.2.10")),
    container("dual", ("front", "10.10.1.20"), ("back", "10.10.2.20")),
    container("q1", ("quiet", "10.10.3.10"), links=["q2:db"]),
    container("q2", ("quiet", "10.10.3.11"), expose=["8000"]),
    container("q3", ("quiet", "10.10.3.12")),
    container("v1", ("vault", "10.10.4.10")),
    container("v2", ("vault", "10.10.4.11")),
    container("web", ("front", "10.10.1.30"),
              ports=["8080:8000", "127.0.0.1:9090:8000", "5353:8000/udp", "9000-9001:8000-8001",
                     "8000-8001:8000-8001"]),  # the last: a run, one element of nftables' range sets
)

ADDRESS = {
    "f1": "10.10.1.10", "f2": "10.10.1.11", "b1": "10.10.2.10", "dual@front": "10.10.1.20",
    "dual@back": "10.10.2.20", "q1": "10.10.3.10", "q2": "10.10.3.11", "q3": "10.10.3.12",
    "v1": "10.10.4.10", "v2": "10.10.4.11",
}


def allowed(src: str, dst: str) -> bool:
    """Where Docker lets a TCP connection through."""
    net = {"f1": "front", "f2": "front", "b1": "back", "dual@front": "front", "dual@back": "back",
           "q1": "quiet", "q2": "quiet", "q3": "quiet", "v1": "vault", "v2": "vault"}
    src_nets = {"front", "back"} if src == "dual" else {net[src]}
    if net[dst] not in src_nets:
        return False  # isolation between bridge networks, both ways
    # ICC off on quiet: a link on a user-defined network opens nothing (Docker)
    return net[dst] != "quiet"


@pytest.fixture(params=["iptables", "nftables"])
def host(request: pytest.FixtureRequest) -> Iterator[SandboxHost]:
    h = SandboxHost(firewall=request.param)
    try:
        yield h
    finally:
        h.close()


def netctl_firewall(host: SandboxHost) -> str:
    """What netctl has in the firewall, as text: its iptables chains or its nftables table."""
    if host.firewall == "nftables":
        return host.run("nft list table inet netctl 2>/dev/null || true").stdout
    return host.run("iptables-save; ip6tables-save").stdout


def owned(host: SandboxHost) -> bool:
    text = netctl_firewall(host)
    return "table inet netctl" in text if host.firewall == "nftables" else "NETCTL" in text


@pytest.fixture
def topology(host: SandboxHost, outside: SandboxHost) -> Iterator[SandboxHost]:
    wire(host, outside, f"{A_IP}/24", f"{OUT_IP}/24")
    host.write("/tmp/matrix.yaml", MATRIX)
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    names = ["f1", "f2", "b1", "dual", "q1", "q2", "q3", "v1", "v2", "web"]
    servers = [serve(host, PORT, names), serve(host, 8001, ["web"]), serve(outside, PORT, ["-"])]
    try:
        yield host
    finally:
        for s in servers:
            s.kill()
            s.wait()


def test_connectivity_matrix_is_dockers(topology: SandboxHost) -> None:
    sources = ["f1", "f2", "b1", "dual", "q1", "q2", "q3", "v1", "v2"]
    triples = [
        (src, ip, PORT)
        for src in sources
        for dst, ip in ADDRESS.items()
        if dst.split("@")[0] != src
    ]
    got = probe(topology, "tcp", triples)
    wrong = []
    for src, ip, _ in triples:
        dst = next(d for d, a in ADDRESS.items() if a == ip)
        expect = allowed(src, dst)
        if (got[f"{src}>{ip}:{PORT}"] is not None) != expect:
            wrong.append(f"{src} -> {dst} ({ip}): expected {'open' if expect else 'blocked'}")
    assert not wrong, "\n".join(wrong)
    # The host itself reaches containers directly, as with Docker.
    assert probe(topology, "tcp", [("-", "10.10.1.10", PORT)])[f"->10.10.1.10:{PORT}"] is not None


def test_masquerade_and_internal_networks(topology: SandboxHost) -> None:
    got = probe(topology, "tcp", [("f1", OUT_IP, PORT), ("b1", OUT_IP, PORT), ("v1", OUT_IP, PORT)])
    # The outside server sees host A's address, not the container's.
    assert got[f"f1>{OUT_IP}:{PORT}"] == A_IP
    assert got[f"b1>{OUT_IP}:{PORT}"] == A_IP
    assert got[f"v1>{OUT_IP}:{PORT}"] is None  # internal: no way out
    assert "default" not in topology.exec("v1", "ip route").stdout


def test_published_ports_every_way(topology: SandboxHost, outside: SandboxHost) -> None:
    web = "10.10.1.30"
    # From another machine: the published ports, TCP and UDP, and a range.
    got = probe(outside, "tcp", [("-", A_IP, port) for port in (8080, 9000, 9001, 9090, 8000, 8001)])
    assert got[f"->{A_IP}:8080"] == OUT_IP  # DNAT without source NAT: the client's own address
    assert got[f"->{A_IP}:9000"] == OUT_IP and got[f"->{A_IP}:9001"] == OUT_IP
    assert got[f"->{A_IP}:8000"] == OUT_IP and got[f"->{A_IP}:8001"] == OUT_IP  # the run
    assert got[f"->{A_IP}:9090"] is None  # bound to 127.0.0.1 on A: not from another host
    assert probe(outside, "udp", [("-", A_IP, 5353)])[f"->{A_IP}:5353"] == OUT_IP
    # From the host itself: its own address and 127.0.0.1 (no userland proxy involved).
    got = probe(topology, "tcp", [("-", A_IP, 8080), ("-", "127.0.0.1", 8080), ("-", "127.0.0.1", 9090)])
    assert all(v is not None for v in got.values()), got
    # From a container on another network through the host's address, and hairpin.
    got = probe(topology, "tcp", [("b1", A_IP, 8080), ("web", A_IP, 8080), ("f1", A_IP, 8080),
                                  ("web", A_IP, 8001)])
    assert all(v is not None for v in got.values()), got
    # Container addresses are not reachable directly from another host, even with a route.
    outside.run(["ip", "route", "add", "10.10.0.0/16", "via", A_IP])
    outside.run(["ip", "route", "add", "127.0.0.0/8", "via", A_IP, "table", "100"])
    got = probe(outside, "tcp", [("-", web, PORT), ("-", "10.10.2.10", PORT)])
    assert got == {f"->{web}:{PORT}": None, f"->10.10.2.10:{PORT}": None}


def test_publishing_on_an_internal_network_is_rejected(host: SandboxHost) -> None:
    host.write("/tmp/bad.yaml", manifest(network("vault", internal=True),
                                         container("v", "vault", ports=["8080:80"])))
    result = host.netctl("apply", "-f", "/tmp/bad.yaml", check=False)
    assert result.returncode == 2 and "internal" in result.stderr
    assert not owned(host)


FOREIGN = [
    ["iptables", "-A", "FORWARD", "-i", "eth9", "-j", "ACCEPT"],
    ["iptables", "-I", "FORWARD", "1", "-s", "192.0.2.7", "-j", "DROP"],
    ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "MASQUERADE"],
    ["iptables", "-t", "nat", "-N", "MINE"],
    ["iptables", "-t", "nat", "-A", "MINE", "-p", "tcp", "--dport", "1", "-j", "RETURN"],
    ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
    ["nft", "add table inet mine"],
    ["nft", "add chain inet mine early { type filter hook forward priority -1; policy accept; }"],
    ["nft", "add rule inet mine early iifname eth9 counter accept"],
]


def foreign_rules(host: SandboxHost) -> list[str]:
    out = host.run(["iptables-save"]).stdout.splitlines()
    mine = host.run(["nft", "list", "table", "inet", "mine"]).stdout.splitlines()
    return [ln for ln in out if (ln.startswith("-A") and "NETCTL" not in ln) or ln.startswith(":MINE")] + mine


def test_foreign_rules_survive_apply_and_delete(host: SandboxHost) -> None:
    for cmd in FOREIGN:
        host.run(cmd)
    before = foreign_rules(host)
    host.write("/tmp/matrix.yaml", MATRIX)
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    assert foreign_rules(host) == before
    host.netctl("delete", "-f", "/tmp/matrix.yaml")
    assert foreign_rules(host) == before
    assert not owned(host)


def test_a_rule_deleted_by_hand_is_shown_and_restored(host: SandboxHost) -> None:
    if host.firewall == "nftables":
        return _nft_rule_and_element_deleted_by_hand(host)
    host.write("/tmp/matrix.yaml", MATRIX)
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    rule = "-A NETCTL-RAW -d 10.10.1.30/32 ! -i"
    saved = host.run(["iptables-save", "-t", "raw"]).stdout
    line = next(ln for ln in saved.splitlines() if ln.startswith(rule))
    host.run(["iptables", "-t", "raw", "-D", *line.split()[1:]])
    host.run(["iptables", "-t", "nat", "-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL",
              "-j", "NETCTL"])
    drift = host.netctl("plan").stdout
    assert f"    + {line}" in drift
    assert "+ jump ipv4/nat/PREROUTING: -m addrtype --dst-type LOCAL -j NETCTL" in drift
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    assert host.run(["iptables-save", "-t", "raw"]).stdout.count(line) == 1
    assert host.netctl("plan").stdout.strip() == "no changes"


def _nft_rule_and_element_deleted_by_hand(host: SandboxHost) -> None:
    host.write("/tmp/matrix.yaml", MATRIX)
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    listing = json.loads(host.run(["nft", "-j", "list", "table", "inet", "netctl"]).stdout)["nftables"]
    rule = next(i["rule"] for i in listing if "rule" in i and i["rule"]["chain"] == "prerouting")
    host.run(["nft", "delete", "rule", "inet", "netctl", "prerouting", "handle", str(rule["handle"])])
    front = _device(host, "front")
    host.run(["nft", f'delete element inet netctl via4 {{ 10.10.1.30 . "{front}" }}'])
    host.run(["nft", "add rule inet netctl forward counter accept"])  # a rule that is not netctl's
    drift = host.netctl("plan").stdout
    assert "~ nftables table inet netctl: skeleton" in drift, drift
    assert f'+ element via4 {{ 10.10.1.30 . "{_device(host, "front")}" }}' in drift
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    text = netctl_firewall(host)
    assert "fib daddr type local jump published" in text and "counter accept" not in text
    assert host.netctl("plan").stdout.strip() == "no changes"


def _device(host: SandboxHost, network: str) -> str:
    network_id = json.loads(host.netctl("-o", "json", "network", "inspect", network).stdout)[0]["Id"]
    return f"br-{network_id[:12]}"


SHIM = """#!/bin/sh
echo "$0 $*" >> /tmp/restores.log
exec /usr/sbin/$(basename "$0") "$@"
"""


def test_one_restore_per_table_and_none_on_a_no_op(host: SandboxHost) -> None:
    for tool in ("iptables-restore", "ip6tables-restore", "nft"):
        host.write(f"/tmp/shim/{tool}", SHIM)
        host.run(["chmod", "+x", f"/tmp/shim/{tool}"])
    many = [container(f"c{i}", ports=[f"{10000 + i}:80"]) for i in range(30)]
    host.write("/tmp/many.yaml", manifest(*many))

    def restores(*args: str) -> list[str]:
        host.run("rm -f /tmp/restores.log; touch /tmp/restores.log")
        host.run(["env", "PATH=/tmp/shim:/usr/sbin:/usr/bin:/sbin:/bin", *NETCTL, *args])
        return host.run(["cat", "/tmp/restores.log"]).stdout.splitlines()

    def writes(calls: list[str]) -> list[str]:
        return [c for c in calls if "restore" in c or " -f " in c]

    if host.firewall == "nftables":  # one transaction for everything; reading is `nft -j list`
        assert len(writes(restores("apply", "-f", "/tmp/many.yaml"))) == 1
    else:
        assert len(writes(restores("apply", "-f", "/tmp/many.yaml"))) == 3  # raw, nat, filter: once each
    calls = restores("apply", "-f", "/tmp/many.yaml")
    assert writes(calls) == []  # no-op: not a single write
    if host.firewall == "nftables":
        # nothing committed since that apply (the ruleset's generation is the same): the table
        # is not read again; any commit, anyone's, and the next command reads it
        assert not [c for c in calls if " list table " in c], calls
        host.run(["nft", "add table inet someone-else"])
        assert [c for c in restores("plan", "-f", "/tmp/many.yaml") if " list table " in c]
        assert not [c for c in restores("plan", "-f", "/tmp/many.yaml") if " list table " in c]
    # One more published port: one transaction (one element in each of dnat, published, hairpin).
    many.append(container("c30", ports=["10030:80"]))
    host.write("/tmp/many.yaml", manifest(*many))
    plan = host.netctl("plan", "-o", "json", "-f", "/tmp/many.yaml").stdout
    if host.firewall == "nftables":
        changed = [a for a in json.loads(plan) if a["kind"].startswith("nft")]
        assert sorted(a["attrs"]["set"] for a in changed) == [
            "containers4", "dnat4any", "hairpin4", "published4", "via4"], changed
        assert all(a["op"] == "create" for a in changed)


def test_legacy_link_writes_hosts_entries(host: SandboxHost) -> None:
    host.write("/tmp/links.yaml", manifest(container("db1"), container("app", links=["db1:db"])))
    host.netctl("apply", "-f", "/tmp/links.yaml")
    hosts = host.exec("app", "cat /etc/hosts").stdout
    db_id = host.netctl("-o", "json", "container", "inspect", "db1").stdout
    short = __import__("json").loads(db_id)[0]["Id"][:12]
    assert f"172.17.0.2\tdb {short} db1\n" in hosts  # alias hostname name (Docker)
    host.exec("app", "ping -c1 -W2 db")


def test_ruleset_after_delete_all_has_no_netctl_chain(host: SandboxHost) -> None:
    host.write("/tmp/matrix.yaml", MATRIX)
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    host.netctl("delete", "-f", "/tmp/matrix.yaml")
    for tool in ("iptables-save", "ip6tables-save"):
        assert "NETCTL" not in host.run([tool]).stdout
    assert "netctl" not in host.run(["nft", "list", "tables"]).stdout


DUAL = manifest(
    network("v6a", "10.20.1.0/24", "fd00:20:1::/64", enableIPv6=True),
    network("v6b", "10.20.2.0/24", "fd00:20:2::/64", enableIPv6=True),
    container("a1", "v6a"),
    container("a2", "v6a", ports=["8080:8000"]),
    container("b1", "v6b"),
)


def test_ipv6_gets_the_same_rules(host: SandboxHost, outside: SandboxHost) -> None:
    wire(host, outside, f"{A_IP}/24", f"{OUT_IP}/24")
    host.run(["ip", "-6", "addr", "add", "fd00:99::1/64", "dev", "uplink", "nodad"])
    outside.run(["ip", "-6", "addr", "add", "fd00:99::2/64", "dev", "uplink", "nodad"])
    host.write("/tmp/dual.yaml", DUAL)
    host.netctl("apply", "-f", "/tmp/dual.yaml")
    if host.firewall == "nftables":
        assert "fd00:20:1::/64" in netctl_firewall(host)  # masquerade6, own6
    else:
        assert "NETCTL-FORWARD" in host.run(["ip6tables-save"]).stdout
    server = serve(host, PORT, ["a1", "a2", "b1"])
    try:
        a2, b1 = "fd00:20:1::3", "fd00:20:2::2"
        got = probe(host, "tcp", [("a1", a2, PORT), ("a1", b1, PORT), ("b1", a2, PORT)])
        assert got[f"a1>{a2}:{PORT}"] is not None  # same network
        assert got[f"a1>{b1}:{PORT}"] is None and got[f"b1>{a2}:{PORT}"] is None  # isolated
        # The published port over IPv6 from another host; the container address itself is not.
        assert probe(outside, "tcp", [("-", "fd00:99::1", 8080)])["->fd00:99::1:8080"] == "fd00:99::2"
        outside.run(["ip", "-6", "route", "add", "fd00:20::/32", "via", "fd00:99::1"])
        assert probe(outside, "tcp", [("-", a2, PORT)])[f"->{a2}:{PORT}"] is None
    finally:
        server.kill()
        server.wait()
    host.netctl("delete", "-f", "/tmp/dual.yaml")
    assert "NETCTL" not in host.run(["ip6tables-save"]).stdout
    assert not owned(host)
