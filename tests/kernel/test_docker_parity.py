"""Where a Docker user would notice a difference, checked with real packets in a sandbox."""

from __future__ import annotations

import json
import re
import subprocess

from tests.sandbox_host import NETCTL, SandboxHost

NET = """
apiVersion: netctl/v1
kind: Network
metadata: {name: par}
spec:
  ipam: {config: [{subnet: 10.61.0.0/24}]}
  options: {com.docker.network.bridge.name: br-par}
"""


def container(name: str, network: str = "par") -> str:
    return (f"---\napiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
            f"spec: {{networks: [{network}]}}\n")


def mac(host: SandboxHost, dev: str) -> str:
    return host.run(["cat", f"/sys/class/net/{dev}/address"]).stdout.strip()


def test_the_bridge_mac_is_fixed_and_no_ping_to_the_gateway_is_lost(host: SandboxHost) -> None:
    host.write("/tmp/par.yaml", NET + container("pinger") + container("zz"))
    host.netctl("apply", "-f", "/tmp/par.yaml")
    dev = "br-par"
    fixed = mac(host, dev)
    assert fixed.startswith("02:42:"), fixed
    assert mac(host, "netctl0").startswith("02:42:")
    pinger = host.popen([*NETCTL, "exec", "pinger", "--",
                         "ping", "-i", "0.1", "-w", "8", "10.61.0.1"], stdout=subprocess.PIPE)
    # Containers come and go; each new veth may have a lower MAC than the bridge's ports had.
    for round_ in range(4):
        extra = "".join(container(f"c{round_}{i}") for i in range(2))
        host.write("/tmp/more.yaml", extra)
        host.netctl("apply", "-f", "/tmp/more.yaml")
        host.netctl("delete", "-f", "/tmp/more.yaml")
        assert mac(host, dev) == fixed
    out, _ = pinger.communicate(timeout=30)
    stats = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert stats, out
    sent, received = map(int, stats.groups())
    assert sent >= 20, out
    assert received == sent, out  # not one reply lost while others came and went


def test_addresses_carry_brd_and_ipv6_stays_on_lo_only(host: SandboxHost) -> None:
    host.write("/tmp/par.yaml", NET + container("c1"))
    host.netctl("apply", "-f", "/tmp/par.yaml")
    eth0 = host.exec("c1", "ip -4 addr show eth0").stdout
    assert "inet 10.61.0.2/24 brd 10.61.0.255 scope global eth0" in eth0
    assert "inet 10.61.0.1/24 brd 10.61.0.255 " in host.run("ip -4 addr show br-par").stdout
    # No IPv6 network: none on eth0, but ::1 on lo as current Docker keeps it (moby #47406).
    assert "inet6" not in host.exec("c1", "ip -6 addr show eth0").stdout
    assert "inet6 ::1/128" in host.exec("c1", "ip -6 addr show lo").stdout


def test_a_static_address_outside_ip_range_is_used(host: SandboxHost) -> None:
    host.write("/tmp/range.yaml", """
apiVersion: netctl/v1
kind: Network
metadata: {name: ranged}
spec: {ipam: {config: [{subnet: 10.62.0.0/24, ipRange: 10.62.0.128/25}]}}
---
apiVersion: netctl/v1
kind: Container
metadata: {name: fixed}
spec: {networks: [{name: ranged, ipv4Address: 10.62.0.10}]}
---
apiVersion: netctl/v1
kind: Container
metadata: {name: dynamic}
spec: {networks: [ranged]}
""")
    host.netctl("apply", "-f", "/tmp/range.yaml")
    assert "10.62.0.10/24" in host.exec("fixed", "ip -4 addr show eth0").stdout
    assert "10.62.0.128/24" in host.exec("dynamic", "ip -4 addr show eth0").stdout
    host.exec("dynamic", "ping -c1 -W2 10.62.0.10")


LEGACY = "".join(container(n, "bridge") for n in ("db1", "c3")) + (
    "---\napiVersion: netctl/v1\nkind: Container\nmetadata: {name: app}\n"
    "spec: {networks: [bridge], links: ['db1:db']}\n")


def test_the_default_bridge_is_configured_like_dockers_daemon_json(host: SandboxHost) -> None:
    host.write("/tmp/daemon.json", '{"bip": "172.26.0.1/16", "mtu": 1400, "icc": false}')
    host.write("/tmp/legacy.yaml", LEGACY)
    cfg = ["--config", "/tmp/daemon.json"]
    host.netctl(*cfg, "apply", "-f", "/tmp/legacy.yaml")
    assert "inet 172.26.0.1/16 " in host.run("ip -4 addr show netctl0").stdout
    assert "mtu 1400 " in host.run("ip link show netctl0").stdout
    db1 = host.exec("db1", "ip -4 -o addr show eth0").stdout.split()[3].split("/")[0]
    assert db1.startswith("172.26.")
    # ICC off on the default bridge: only the linked pair talks (Docker's legacy links).
    host.exec("app", f"ping -c1 -W2 {db1}")
    assert host.exec("c3", f"ping -c1 -W1 {db1}", check=False).returncode != 0
    assert f"{db1}\tdb " in host.exec("app", "cat /etc/hosts").stdout
    # A configuration change is a planned change like any other.
    host.write("/tmp/daemon.json", '{"bip": "172.26.0.1/16", "mtu": 1400, "icc": true}')
    assert "NETCTL-FORWARD" in host.netctl(*cfg, "plan").stdout
    host.netctl(*cfg, "apply", "-f", "/tmp/legacy.yaml")
    host.exec("c3", f"ping -c1 -W2 {db1}")
    bad = host.netctl("--config", "/tmp/nope.json", "plan", check=False)
    assert bad.returncode == 2 and "error: /tmp/nope.json: configuration file not found" in bad.stderr


def test_inspect_and_ls_have_dockers_shapes(host: SandboxHost) -> None:
    host.write("/tmp/shapes.yaml", NET + """---
apiVersion: netctl/v1
kind: Container
metadata: {name: web}
spec:
  networks: [{name: par, ipv4Address: 10.61.0.9, aliases: [www]}]
  ports: ["9000-9002:9000-9002", "8080:80"]
""")
    host.netctl("apply", "-f", "/tmp/shapes.yaml")
    ls = {line.split()[1]: line.split()[2] for line in host.netctl("network", "ls").stdout.splitlines()[1:]}
    assert ls["none"] == "null" and ls["par"] == "bridge"
    net = json.loads(host.netctl("-o", "json", "network", "inspect", "par").stdout)[0]
    assert net["IPAM"] == {"Driver": "default", "Options": None, "Config": [{"Subnet": "10.61.0.0/24"}]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", net["Created"]), net["Created"]
    web = json.loads(host.netctl("-o", "json", "container", "inspect", "web").stdout)[0]
    settings = web["NetworkSettings"]["Networks"]["par"]
    assert settings["IPAMConfig"] == {"IPv4Address": "10.61.0.9"} and settings["Aliases"] == ["www"]
    assert settings["DNSNames"] == ["web", "www", web["Id"][:12]] and settings["IPAddress"] == "10.61.0.9"
    assert web["NetworkSettings"]["IPAddress"] == ""  # not on the default bridge
    row = next(line for line in host.netctl("container", "ls").stdout.splitlines() if " web " in line)
    assert "0.0.0.0:9000-9002->9000-9002/tcp, 0.0.0.0:8080->80/tcp" in row, row
