"""The host's loopback-only services stay out of containers' and neighbours' reach.

netctl turns on route_localnet on its bridges so that ports published on 127.0.0.1 work
without a userland proxy; with it the kernel would accept 127.0.0.0/8 from the bridge too
(Kubernetes CVE-2020-8558). The attacker here has CAP_NET_RAW (Docker's default): it
writes Ethernet frames to the gateway's MAC by hand, or, as root in its namespace, routes
127.0.0.1 via the gateway. The host's listener records what reaches it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from controller.kernel.sandbox import cable
from tests.sandbox_host import ROOT, SandboxHost, probe, serve, wire

RAW = [sys.executable, str(ROOT / "tests" / "rawprobe.py")]
BRIDGE, GATEWAY = "br-hole", "10.41.0.1"
SECRET, PUBLISHED = 7778, 9090

TOPOLOGY = f"""
apiVersion: netctl/v1
kind: Network
metadata: {{name: hole}}
spec:
  enableIPv6: true
  ipam: {{config: [{{subnet: 10.41.0.0/24}}, {{subnet: "fd00:41::/64"}}]}}
  options: {{com.docker.network.bridge.name: {BRIDGE}}}
---
apiVersion: netctl/v1
kind: Container
metadata: {{name: attacker}}
spec: {{networks: [hole]}}
---
apiVersion: netctl/v1
kind: Container
metadata: {{name: web}}
spec:
  networks: [hole]
  ports: ["127.0.0.1:{PUBLISHED}:8000"]
"""


@pytest.fixture
def hole(host: SandboxHost) -> Iterator[tuple[SandboxHost, subprocess.Popen[str]]]:
    host.write("/tmp/hole.yaml", TOPOLOGY)
    host.netctl("apply", "-f", "/tmp/hole.yaml")
    listener = host.popen([*RAW, "listen", "127.0.0.1", str(SECRET), "::1", str(SECRET)],
                          stdout=subprocess.PIPE)
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    web = serve(host, 8000, ["web"])
    try:
        yield host, listener
    finally:
        web.kill()
        web.wait()
        listener.kill()
        listener.wait()


def reached(listener: subprocess.Popen[str]) -> list[str]:
    """What the host's loopback listener saw (it is stopped to read it)."""
    listener.kill()
    out, _ = listener.communicate()
    return out.split("\n") if out.strip() else []


def raw(host: SandboxHost, container: str | None, dev: str, mac: str, dst: str, port: int, proto: str) -> str:
    argv = [*RAW, "send", dev, mac, dst, str(port), proto]
    if container is None:
        return host.run(argv).stdout.strip()
    return host.netctl("exec", container, "--", *argv).stdout.strip()


def mac_of(host: SandboxHost, dev: str) -> str:
    return host.run(["cat", f"/sys/class/net/{dev}/address"]).stdout.strip()


CASES = [(dst, port, proto) for dst in ("127.0.0.1", "::1") for port in (SECRET, PUBLISHED)
         for proto in ("tcp", "udp")]


def test_crafted_frames_from_a_container_reach_nothing_on_loopback(
    hole: tuple[SandboxHost, subprocess.Popen[str]],
) -> None:
    host, listener = hole
    gw = mac_of(host, BRIDGE)
    answers = {c: raw(host, "attacker", "eth0", gw, *c) for c in CASES}
    assert set(answers.values()) == {"silent"}, answers
    assert reached(listener) == []
    # The probe itself works: the same frame to the gateway's own address is answered (RST).
    assert raw(host, "attacker", "eth0", gw, GATEWAY, SECRET, "tcp") == "answered"


def test_routing_loopback_via_the_gateway_reaches_nothing(
    hole: tuple[SandboxHost, subprocess.Popen[str]],
) -> None:
    host, listener = hole
    host.exec("attacker", "sysctl -qw net.ipv4.conf.eth0.route_localnet=1 && "
                          "ip route del local 127.0.0.0/8 dev lo table local && "
                          "ip route del local 127.0.0.1 dev lo table local && "
                          f"ip route add 127.0.0.1/32 via {GATEWAY} dev eth0")
    got = probe(host, "tcp", [("attacker", "127.0.0.1", SECRET), ("attacker", "127.0.0.1", PUBLISHED)])
    got |= probe(host, "udp", [("attacker", "127.0.0.1", SECRET)])
    assert set(got.values()) == {None}, got
    assert reached(listener) == []


def test_neighbours_on_the_bridge_and_the_uplink_reach_nothing(
    hole: tuple[SandboxHost, subprocess.Popen[str]], outside: SandboxHost,
) -> None:
    host, listener = hole
    # Another machine plugged into the bridge (a port of it), and one on the routed uplink.
    cable(host.pid, "ext0", outside.pid, "ext0")
    host.run(["ip", "link", "set", "ext0", "master", BRIDGE, "up"])
    outside.run("ip addr add 10.41.0.200/24 dev ext0 && ip link set ext0 up")
    wire(host, outside, "198.18.0.1/24", "198.18.0.2/24")
    for dev, mac in (("ext0", mac_of(host, BRIDGE)), ("uplink", mac_of(host, "uplink"))):
        answers = {c: raw(outside, None, dev, mac, *c) for c in CASES}
        assert set(answers.values()) == {"silent"}, (dev, answers)
    assert raw(outside, None, "ext0", mac_of(host, BRIDGE), GATEWAY, SECRET, "tcp") == "answered"
    assert reached(listener) == []


def test_the_port_published_on_loopback_still_answers_the_host(
    hole: tuple[SandboxHost, subprocess.Popen[str]],
) -> None:
    host, _ = hole
    got = probe(host, "tcp", [("-", "127.0.0.1", PUBLISHED)])
    assert got[f"->127.0.0.1:{PUBLISHED}"] is not None  # DNAT'd from the host's own OUTPUT
    # and the rule that closes the hole is there, per bridge, both families
    v4, v6 = (host.run([tool, "-t", "raw"]).stdout for tool in ("iptables-save", "ip6tables-save"))
    assert f"-A NETCTL-RAW -d 127.0.0.0/8 -i {BRIDGE} -j DROP" in v4
    assert f"-A NETCTL-RAW -d ::1/128 -i {BRIDGE} -j DROP" in v6


def test_netctl_listens_on_nothing_in_the_host_namespace(
    hole: tuple[SandboxHost, subprocess.Popen[str]],
) -> None:
    """The DNS server answers inside containers only: on 127.0.0.11 in their namespaces, on
    ports the kernel picked (127.0.0.11:53 is DNAT'd there, port 53 stays the container's)."""
    host, _ = hole
    assert "127.0.0.11" in host.exec("attacker", "cat /etc/resolv.conf").stdout
    sockets = host.run(["ss", "-Hlntu"]).stdout.splitlines()
    ours = [s for s in sockets if f":{SECRET} " not in s]  # the test's own listener
    assert ours == [], ours
    inside = {line.split()[4] for line in host.exec("attacker", "ss -Hlntu").stdout.splitlines()}
    assert len(inside) == 2 and all(a.startswith("127.0.0.11:") and a != "127.0.0.11:53" for a in inside)
