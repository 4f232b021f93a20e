"""Switching firewall backends is one planned migration, with traffic flowing: a TCP
connection opened through a published port before the switch keeps working after it, and
new ones are accepted, from iptables to nftables and back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.manifests import container, manifest, network
from tests.sandbox_host import NETCTL, SandboxHost, probe, serve, wire

A_IP, OUT_IP = "198.18.0.1", "198.18.0.2"

TOPOLOGY = manifest(
    network("front", "10.30.1.0/24"),
    network("back", "10.30.2.0/24"),
    container("web", ("front", "10.30.1.10"), ports=["8080:7000", "8081:8000"]),
    container("b1", ("back", "10.30.2.10")),
)

ECHO = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(8); print("ready", flush=True)
while True:
    c, _ = s.accept()
    while data := c.recv(100):
        c.sendall(data)
"""

CLIENT = f"""
import socket, sys
c = socket.create_connection(("{A_IP}", 8080), timeout=5)
print("connected", flush=True)
for line in sys.stdin:
    c.sendall(line.encode())
    print(c.recv(100).decode().strip(), flush=True)
"""


@pytest.fixture
def lab(host: SandboxHost, outside: SandboxHost) -> Iterator[tuple[SandboxHost, SandboxHost]]:
    wire(host, outside, f"{A_IP}/24", f"{OUT_IP}/24")
    host.write("/tmp/topology.yaml", TOPOLOGY)
    host.netctl("apply", "-f", "/tmp/topology.yaml")
    echo = host.popen([*NETCTL, "exec", "web", "--", "python3", "-c", ECHO], stdout=subprocess.PIPE)
    assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
    servers = [echo, serve(host, 8000, ["web", "b1"])]
    try:
        yield host, outside
    finally:
        for s in servers:
            s.kill()
            s.wait()


def talk(client: subprocess.Popen[str], word: str) -> str:
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(word + "\n")
    client.stdin.flush()
    return client.stdout.readline().strip()


def migrate(host: SandboxHost, to: str) -> list[dict[str, object]]:
    """Switch to backend `to`: the plan first (what it will do), then the apply."""
    host.firewall = to
    plan = json.loads(host.netctl("plan", "-o", "json", "-f", "/tmp/topology.yaml").stdout)
    host.netctl("apply", "-f", "/tmp/topology.yaml")
    return [a for a in plan if a["kind"] in ("chain", "jump", "nftable", "nftelement")]


def test_migration_both_ways_keeps_a_live_connection(lab: tuple[SandboxHost, SandboxHost]) -> None:
    host, outside = lab
    client = outside.popen(["python3", "-c", CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "connected"
        assert talk(client, "before") == "before"

        changes = migrate(host, "nftables")
        deleted = {a["kind"] for a in changes if a["op"] == "delete"}
        created = {a["kind"] for a in changes if a["op"] == "create"}
        assert deleted == {"chain", "jump"} and created == {"nftable", "nftelement"}, changes
        assert "NETCTL" not in host.run("iptables-save; ip6tables-save").stdout
        assert "table inet netctl" in host.run(["nft", "list", "tables"]).stdout
        # netctl's own FORWARD DROP (set when it turned forwarding on) left with its chains:
        # it would drop what the nftables table accepts.
        assert ":FORWARD ACCEPT" in host.run(["iptables-save", "-t", "filter"]).stdout
        assert talk(client, "after nftables") == "after nftables"
        _still_dockers(host, outside)
        assert host.netctl("plan").stdout.strip() == "no changes"  # the state keeps the choice

        changes = migrate(host, "iptables")
        assert {a["kind"] for a in changes if a["op"] == "delete"} == {"nftable"}, changes
        assert "table inet netctl" not in host.run(["nft", "list", "tables"]).stdout
        assert ":FORWARD DROP" in host.run(["iptables-save", "-t", "filter"]).stdout
        assert talk(client, "after iptables") == "after iptables"
        _still_dockers(host, outside)
    finally:
        client.kill()
        client.wait()


def _still_dockers(host: SandboxHost, outside: SandboxHost) -> None:
    """New connections: the published port from outside, isolation between networks."""
    assert probe(outside, "tcp", [("-", A_IP, 8081)])[f"->{A_IP}:8081"] == OUT_IP
    assert probe(host, "tcp", [("b1", "10.30.1.10", 8000)])["b1>10.30.1.10:8000"] is None


RESTORED = {  # what shows the backend's rules are back
    "nftables": ("nft list table inet netctl 2>/dev/null || true", "dnat4any"),
    "iptables": ("iptables-save -t nat", "NETCTL-DNAT"),
}


@pytest.mark.parametrize("backend", sorted(RESTORED))
def test_a_flushed_ruleset_is_restored_by_the_controller(host: SandboxHost, backend: str) -> None:
    """`nft flush ruleset` (a firewall reload) also empties iptables-nft's tables: both
    backends hear it from nfnetlink."""
    host.firewall = backend
    command, mark = RESTORED[backend]
    host.write("/tmp/manifests/topology.yaml", TOPOLOGY)
    host.netctl("apply", "-f", "/tmp/manifests")
    host.run(["nft", "flush", "ruleset"])
    drift = host.netctl("plan", "-f", "/tmp/manifests").stdout  # the missing rules, as drift
    missing = "+ nftables table inet netctl" if backend == "nftables" else "+ chain ipv4/filter/NETCTL"
    assert missing in drift
    controller = host.popen([*NETCTL, "controller", "--manifests", "/tmp/manifests",
                             "--resync-interval", "300"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _until(lambda: mark in host.run(command).stdout, 30)
        _until(lambda: host.netctl("plan").stdout.strip() == "no changes", 30)
        host.run(["nft", "flush", "ruleset"])
        flushed = time.monotonic()
        _until(lambda: mark in host.run(command).stdout, 10)
        # nfnetlink told the controller: within a second, not at its 300 s resync
        assert time.monotonic() - flushed < 1, time.monotonic() - flushed
        _until(lambda: host.netctl("plan").stdout.strip() == "no changes", 10)
    finally:
        controller.terminate()
        controller.wait(timeout=30)


def _until(check: object, seconds: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)



COEXIST = manifest(  # ICC off: netctl's forward chain drops between the two containers
    network("quiet", "10.30.1.0/24", options={"com.docker.network.bridge.enable_icc": "false"}),
    container("q1", ("quiet", "10.30.1.10")),
    container("q2", ("quiet", "10.30.1.20")),
)


def test_the_users_own_table_drops_first_and_its_mark_gets_past_netctl(host: SandboxHost) -> None:
    """The DOCKER-USER equivalent (README: The nftables backend): the user's table at
    priority filter - 1 runs first; a drop there wins, an accept there does not override
    netctl's drops, a firewall mark named by bridge-accept-fwmark does."""
    host.firewall = "nftables"
    host.write("/tmp/topology.yaml", COEXIST)
    host.netctl("apply", "-f", "/tmp/topology.yaml")
    server = serve(host, 8000, ["q1", "q2"])
    try:
        def reach() -> dict[str, str | None]:
            return probe(host, "tcp", [("q1", "10.30.1.20", 8000), ("q2", "10.30.1.10", 8000)])

        closed = {"q1>10.30.1.20:8000": None, "q2>10.30.1.10:8000": None}
        assert reach() == closed
        host.run(["nft", "-f", "-"], input="""
table inet mine {
  chain forward {
    type filter hook forward priority filter - 1; policy accept;
    ip saddr 10.30.1.10 ip daddr 10.30.1.20 meta mark set 0x1
    ip saddr 10.30.1.20 ip daddr 10.30.1.10 accept
  }
}
""")
        assert reach() == closed  # an accept in another table is not final
        config = ("--config", "/tmp/daemon.json")
        host.write("/tmp/daemon.json", '{"bridge-accept-fwmark": "0x1/0x3"}')
        plan = host.netctl(*config, "plan", "-f", "/tmp/topology.yaml").stdout
        assert "~ nftables table inet netctl" in plan, plan  # one rule more in the forward chain
        host.netctl(*config, "apply", "-f", "/tmp/topology.yaml")
        assert host.netctl(*config, "plan").stdout.strip() == "no changes"
        # the marked direction passes (its replies are established), the other stays dropped
        assert reach() == {"q1>10.30.1.20:8000": "10.30.1.10", "q2>10.30.1.10:8000": None}
        # a distribution's `inet filter` with policy drop wins over netctl: plan says so (and
        # apply, when it changes something; a no-op apply runs no nft at all)
        host.run(["nft", "add table inet filter; add chain inet filter forward "
                  "{ type filter hook forward priority filter; policy drop; }"])
        out = host.netctl(*config, "plan", "-f", "/tmp/topology.yaml")
        assert "table inet filter chain forward (hook forward, priority 0) has policy drop" \
            in out.stdout + out.stderr
        assert reach() == closed
    finally:
        server.kill()
        server.wait()
