"""Where a Docker user would notice a difference, checked with real packets in a sandbox."""

from __future__ import annotations

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
