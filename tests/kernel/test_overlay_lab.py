"""`netctl sandbox --hosts N`: the seed's overlay walkthrough, as a user would type it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.cluster import server

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not server.available(), reason="etcd is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]

WALKTHROUGH = """
set -e
cat > "$NETCTL_LAB/web.yaml" <<'YAML'
apiVersion: netctl/v1
kind: Container
metadata: {name: web}
spec: {networks: [my-multi-host-network]}
YAML
sed 's/name: web/name: client/' "$NETCTL_LAB/web.yaml" > "$NETCTL_LAB/client.yaml"
host1 netctl network create --driver overlay my-multi-host-network
host1 netctl apply -f "$NETCTL_LAB/web.yaml" > /dev/null
host2 netctl apply -f "$NETCTL_LAB/client.yaml" > /dev/null
host2 netctl network ls
for i in $(seq 50); do host2 netctl exec client -- ping -c1 -W1 10.0.0.2 > /dev/null && break; sleep 0.2; done
host2 netctl exec client -- ping -c1 -W1 10.0.0.2
etcdctl get --prefix --keys-only /netctl/endpoints/
ip -br link show type veth
"""


def test_the_lab_runs_the_seed_overlay_walkthrough() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller.cli", "sandbox", "--hosts", "2", "--", "sh", "-c", WALKTHROUGH],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "my-multi-host-network   overlay   global" in out
    assert "1 received" in out
    assert "/netctl/endpoints/my-multi-host-network/10.200.0.11/web" in out
    assert "/netctl/endpoints/my-multi-host-network/10.200.0.12/client" in out
    # The console is the lab's etcd host: its veths are the hosts' underlay cables.
    assert "host1@" in out and "host2@" in out
