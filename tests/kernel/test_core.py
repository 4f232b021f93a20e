"""The single-host core against the real kernel, inside sandbox hosts."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.sandbox_host import SandboxHost

SEED = "examples/seed-tour.yaml"


def links(host: SandboxHost) -> dict[str, dict[str, object]]:
    out = json.loads(host.run(["ip", "-j", "-d", "link", "show"]).stdout)
    return {link["ifname"]: link for link in out}


def ip_addr(host: SandboxHost, container: str) -> dict[str, dict[str, object]]:
    out = json.loads(host.exec(container, "ip -j addr show").stdout)
    return {link["ifname"]: link for link in out}


def test_seed_tour_builds_docker_topology(host: SandboxHost) -> None:
    out = host.netctl("apply", "-f", SEED).stdout
    assert "Plan: " in out

    c1 = ip_addr(host, "container1")
    assert set(c1) == {"lo", "eth0"}
    assert c1["eth0"]["address"] == "02:42:ac:11:00:02"
    assert c1["eth0"]["mtu"] == 1500
    assert "UP" in c1["eth0"]["flags"]
    assert {(a["local"], a["prefixlen"]) for a in c1["eth0"]["addr_info"] if a["family"] == "inet"} == {
        ("172.17.0.2", 16)
    }
    c2 = ip_addr(host, "container2")
    assert c2["eth0"]["address"] == "02:42:ac:11:00:03"
    route = host.exec("container1", "ip route show default").stdout
    assert "default via 172.17.0.1 dev eth0" in route

    # The default bridge is netctl0 with the gateway; isolated_nw got the next pool subnet.
    host_links = links(host)
    assert host_links["netctl0"]["linkinfo"]["info_kind"] == "bridge"
    assert "172.17.0.1/16" in host.run(["ip", "-br", "addr", "show", "netctl0"]).stdout
    c3 = ip_addr(host, "container3")
    assert [a["local"] for a in c3["eth0"]["addr_info"] if a["family"] == "inet"] == ["172.18.0.2"]

    # none: only lo.
    assert set(ip_addr(host, "networkdisabled")) == {"lo"}

    # Real packets between the two containers on the default bridge.
    host.exec("container1", "ping -c1 -W2 172.17.0.3")
    host.exec("container2", "ping -c1 -W2 172.17.0.2")

    # /etc/hosts as Docker writes it: localhost lines and the container's own address.
    hosts = host.exec("container1", "cat /etc/hosts").stdout
    assert hosts.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert re.search(r"^172\.17\.0\.2\t[0-9a-f]{12}$", hosts, re.M)
    assert host.exec("container1", "hostname").stdout.strip() == hosts.strip().splitlines()[-1].split("\t")[1]

    # Namespaces are named after containers, as `ip netns` shows them.
    names = host.run(["ip", "netns", "list"]).stdout
    for name in ("container1", "container2", "container3", "networkdisabled"):
        assert name in names

    ls = host.netctl("network", "ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert {line.split()[1] for line in ls[1:]} == {"bridge", "host", "none", "isolated_nw"}

    inspect = json.loads(host.netctl("network", "inspect", "bridge").stdout)[0]
    assert inspect["Name"] == "bridge" and inspect["Driver"] == "bridge"
    assert inspect["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
    assert inspect["Options"]["com.docker.network.bridge.name"] == "netctl0"
    members = {v["Name"]: v for v in inspect["Containers"].values()}
    assert members["container1"]["IPv4Address"] == "172.17.0.2/16"
    assert members["container1"]["MacAddress"] == "02:42:ac:11:00:02"
    assert len(inspect["Id"]) == 64


def test_reapply_is_a_no_op_that_touches_nothing(host: SandboxHost) -> None:
    host.netctl("apply", "-f", SEED)
    before = host.run(["ip", "-d", "-s", "link", "show"]).stdout
    out = host.netctl("apply", "-f", SEED).stdout
    assert out.strip() == "no changes"
    assert host.netctl("plan").stdout.strip() == "no changes"
    after = host.run(["ip", "-d", "-s", "link", "show"]).stdout
    # Same interfaces with the same indexes: nothing was recreated.
    assert re.findall(r"^\d+: \S+", before, re.M) == re.findall(r"^\d+: \S+", after, re.M)


def test_delete_leaves_nothing_of_netctl(host: SandboxHost) -> None:
    host.netctl("apply", "-f", SEED)
    host.netctl("delete", "-f", SEED)
    assert set(links(host)) == {"lo"}
    assert host.run(["ip", "netns", "list"]).stdout.strip() == ""
    assert host.run("ls -A /etc/netns").stdout.strip() == ""
    assert host.netctl("plan").stdout.strip() == "no changes"


def test_foreign_objects_survive_apply_and_delete(host: SandboxHost) -> None:
    host.run(
        "ip link add foreignbr type bridge && ip link set foreignbr up && "
        "ip addr add 10.99.0.1/24 dev foreignbr && "
        "ip netns add foreignns && ip link add fveth0 type veth peer name fveth1 netns foreignns && "
        "ip link set fveth0 master foreignbr && ip link set fveth0 alias 'not-netctl' && "
        "mkdir -p /etc/netns/foreignns && echo keep > /etc/netns/foreignns/hosts"
    )

    def snapshot() -> str:
        # Everything but the bridge's running timers, which tick by themselves.
        return host.run(
            "{ ip -d link show foreignbr; ip -d link show fveth0; ip addr show foreignbr; "
            "ip netns list | grep foreignns; ip -n foreignns -d link show; cat /etc/netns/foreignns/hosts; }"
            " | sed -E 's/[a-z_]+_timer +[0-9.]+//g; s/ tentative//'"
        ).stdout

    before = snapshot()
    host.netctl("apply", "-f", SEED)
    assert snapshot() == before
    host.netctl("delete", "-f", SEED)
    assert snapshot() == before


def test_invalid_input_exits_2_and_changes_nothing(host: SandboxHost) -> None:
    host.netctl("apply", "-f", SEED)
    host.write(
        "/tmp/bad.yaml",
        "apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: c9\nspec:\n  networks: [nowhere]\n",
    )
    before = host.run(["ip", "-br", "link", "show"]).stdout.split()[::4]
    result = host.netctl("apply", "-f", "/tmp/bad.yaml", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "/tmp/bad.yaml:6" in result.stderr and "nowhere" in result.stderr
    assert host.run(["ip", "-br", "link", "show"]).stdout.split()[::4] == before
    assert host.netctl("plan").stdout.strip() == "no changes"
    listed = [line.split()[1] for line in host.netctl("container", "ls").stdout.splitlines()[1:]]
    assert "c9" not in listed


def test_drift_is_shown_by_plan_and_repaired_by_apply(host: SandboxHost) -> None:
    host.netctl("apply", "-f", SEED)
    veth = next(n for n, link in links(host).items() if link.get("master") == "netctl0")
    host.run(["ip", "link", "del", veth])
    host.run(["ip", "-n", "container3", "addr", "flush", "dev", "eth0"])
    host.run(["ip", "link", "set", "netctl0", "mtu", "1400"])
    drift = host.netctl("plan").stdout
    assert f"+ veth {veth}" in drift
    assert "+ address container3/eth0" in drift
    assert "~ bridge netctl0: mtu 1400 -> 1500" in drift
    host.netctl("apply", "-f", SEED)
    assert host.netctl("plan").stdout.strip() == "no changes"
    host.exec("container1", "ping -c1 -W2 172.17.0.3")


def test_network_commands_record_objects_like_manifests(host: SandboxHost) -> None:
    host.netctl("apply", "-f", SEED)
    net_id = host.netctl(
        "network", "create", "--subnet", "10.77.0.0/24", "-o", "com.docker.network.driver.mtu=1400", "app"
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", net_id)
    host.netctl("network", "connect", "--ip", "10.77.0.10", "app", "container1")
    c1 = ip_addr(host, "container1")
    assert c1["eth1"]["mtu"] == 1400
    assert [a["local"] for a in c1["eth1"]["addr_info"] if a["family"] == "inet"] == ["10.77.0.10"]
    assert f"br-{net_id[:12]}" in links(host)

    refused = host.netctl("network", "rm", "app", check=False)
    assert refused.returncode == 2 and "has active endpoints" in refused.stderr

    host.netctl("network", "disconnect", "app", "container1")
    assert "eth1" not in ip_addr(host, "container1")
    host.netctl("network", "rm", "app")
    assert f"br-{net_id[:12]}" not in links(host)
    assert host.netctl("plan").stdout.strip() == "no changes"

    refused = host.netctl("network", "rm", "bridge", check=False)
    assert refused.returncode == 2 and "pre-defined" in refused.stderr


def test_addresses_survive_reapply_with_other_changes(host: SandboxHost) -> None:
    host.netctl("apply", "-f", SEED)
    host.write(
        "/tmp/more.yaml",
        "apiVersion: netctl/v1\nkind: Container\nmetadata: {name: early}\nspec: {networks: [bridge]}\n",
    )
    host.netctl("apply", "-f", "/tmp/more.yaml")
    host.netctl("delete", "-f", SEED)
    host.netctl("apply", "-f", SEED)
    # `early` kept 172.17.0.4 throughout; the seed containers got their addresses back in order.
    early = ip_addr(host, "early")
    assert [a["local"] for a in early["eth0"]["addr_info"] if a["family"] == "inet"] == ["172.17.0.4"]


@pytest.mark.parametrize("mtu", [1400])
def test_ipv6_and_mtu(host: SandboxHost, mtu: int) -> None:
    host.write(
        "/tmp/v6.yaml",
        f"""apiVersion: netctl/v1
kind: Network
metadata: {{name: dual}}
spec:
  enableIPv6: true
  options: {{com.docker.network.driver.mtu: "{mtu}"}}
  ipam:
    config:
      - subnet: 172.30.5.0/24
      - subnet: fd00:5::/64
---
apiVersion: netctl/v1
kind: Container
metadata: {{name: a}}
spec: {{networks: [dual]}}
---
apiVersion: netctl/v1
kind: Container
metadata: {{name: b}}
spec: {{networks: [dual]}}
""",
    )
    host.netctl("apply", "-f", "/tmp/v6.yaml")
    a = ip_addr(host, "a")
    assert a["eth0"]["mtu"] == mtu
    v6 = [x["local"] for x in a["eth0"]["addr_info"] if x["family"] == "inet6" and x["scope"] == "global"]
    assert v6 == ["fd00:5::2"]
    host.exec("b", "ping -c1 -W2 fd00:5::2")
    host.exec("b", "ping -c1 -W2 172.30.5.2")
    assert "default via fd00:5::1" in host.exec("a", "ip -6 route show default").stdout
    assert host.netctl("plan").stdout.strip() == "no changes"


def test_progress_bar_on_a_terminal_and_log_lines_otherwise(host: SandboxHost) -> None:
    docs = "---\n".join(
        f"apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: p{i}}}\nspec: {{}}\n" for i in range(10)
    )
    host.write("/tmp/ten.yaml", docs)
    piped = host.netctl("apply", "-f", "/tmp/ten.yaml")
    lines = [ln for ln in piped.stderr.splitlines() if " action " in ln]
    summary = next(line for line in piped.stdout.splitlines() if line.startswith("Plan: "))
    planned = sum(int(n) for n in re.findall(r"(\d+) to (?:create|update|delete)", summary))
    # one line per action, but a firewall transaction is one line for all it carried (batch=N)
    batched = sum(int(n) - 1 for ln in lines for n in re.findall(r"batch=(\d+)", ln))
    assert batched > 0 and len(lines) + batched == planned > 80
    assert all("ms=" in ln for ln in lines)
    host.netctl("delete", "-f", "/tmp/ten.yaml")
    # Under a terminal (script(1) gives it one): a progress bar and no per-action lines.
    command = f"{sys.executable} -m controller.cli apply -f /tmp/ten.yaml"
    host.run(["script", "-qc", command, "/tmp/tty.log"])
    shown = host.run(["cat", "/tmp/tty.log"]).stdout
    assert "applying" in shown and " action " not in shown
    assert re.search(r"applying \d+/\d+ \w+", shown), shown[-500:]  # counts and the current object
