"""The crash campaign: SIGKILL at every action of a representative apply and of its delete,
in turn; after each, apply (or delete) again converges: plan empty, no leaked link,
namespace or rule, no address handed out twice, and after the delete nothing is left.

`NETCTL_CRASH_EVERY=N` kills at every Nth point only (CI runs every point).
"""

from __future__ import annotations

import json
import os

from tests.sandbox_host import NETCTL, SandboxHost

TOPOLOGY = """
apiVersion: netctl/v1
kind: Network
metadata: {name: app}
spec: {ipam: {config: [{subnet: 10.71.0.0/24}]}}
---
apiVersion: netctl/v1
kind: Container
metadata: {name: db}
spec: {networks: [app], expose: ["5432"]}
---
apiVersion: netctl/v1
kind: Container
metadata: {name: web}
spec:
  networks: [app, bridge]
  ports: ["8080:80", "127.0.0.1:9090:90/udp"]
  links: ["db:database"]
---
apiVersion: netctl/v1
kind: Container
metadata: {name: legacy}
spec: {networks: [bridge], links: ["web"]}
"""
CONTAINERS = ["db", "legacy", "web"]
EVERY = int(os.environ.get("NETCTL_CRASH_EVERY", "1"))


def killed(host: SandboxHost, verb: str, k: int) -> bool:
    """Run `verb` killed after its k-th action; False: it had fewer and completed."""
    argv = ["env", f"NETCTL_FAILPOINTS=action={k}", *NETCTL, verb, "-f", "/tmp/t.yaml"]
    result = host.run(argv, check=False)
    assert result.returncode in (-9, 0), (verb, k, result.returncode, result.stderr[-500:])
    return result.returncode == -9


def links(host: SandboxHost) -> list[dict[str, object]]:
    return [link for link in json.loads(host.run("ip -j link").stdout) if link["ifname"] != "lo"]


def assert_applied(host: SandboxHost, where: str) -> None:
    assert host.netctl("plan").stdout.strip() == "no changes", where
    owned = [link for link in links(host) if str(link.get("ifalias", "")).startswith("netctl:")]
    assert len(owned) == len(links(host)), f"{where}: a link without netctl's alias: {links(host)}"
    veths = [link for link in owned if str(link["ifname"]).startswith("veth")]
    assert len(veths) == 4, f"{where}: {len(veths)} veths, 4 endpoints"
    assert sorted(host.run("ip netns list").stdout.split()[::3]) == CONTAINERS, where
    addresses = [a["local"] for c in CONTAINERS for i in json.loads(host.run(f"ip -n {c} -j addr").stdout)
                 for a in i["addr_info"] if a["family"] == "inet" and i["ifname"] != "lo"]
    assert len(addresses) == len(set(addresses)) == 4, f"{where}: {addresses}"


def assert_nothing_left(host: SandboxHost, where: str) -> None:
    assert links(host) == [], f"{where}: {links(host)}"
    assert host.run("ip netns list").stdout.strip() == "", where
    for tool in ("iptables-save", "ip6tables-save"):
        assert "NETCTL" not in host.run(tool).stdout, where
    assert host.run("ls /etc/netns").stdout.strip() == "", where


def test_sigkill_at_every_action_of_apply_and_delete(host: SandboxHost) -> None:
    host.write("/tmp/t.yaml", TOPOLOGY)
    points = {"apply": 0, "delete": 0}
    more = {"apply": True, "delete": True}
    k = 1
    while more["apply"] or more["delete"]:
        if more["apply"] and killed(host, "apply", k):
            points["apply"] += 1
            host.netctl("apply", "-f", "/tmp/t.yaml")
        else:
            more["apply"] = False
            host.netctl("apply", "-f", "/tmp/t.yaml")  # (a no-op if the killed one completed)
        assert_applied(host, f"apply killed after action {k}")
        if more["delete"] and killed(host, "delete", k):
            points["delete"] += 1
            host.netctl("delete", "-f", "/tmp/t.yaml", "--ignore-not-found")
        else:
            more["delete"] = False
            host.netctl("delete", "-f", "/tmp/t.yaml", "--ignore-not-found")
        assert_nothing_left(host, f"delete killed after action {k}")
        k += EVERY
    assert points["apply"] > 30 and points["delete"] > 5, points
    print(f"kill points: {points} (every one converged)")
