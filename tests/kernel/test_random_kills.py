"""Random kills of netctl's long-running processes while they work: the controller, the
embedded DNS server (supervisor or worker) and the overlay agent, each SIGKILLed at a random
moment (fixed seed) in the middle of changes; after each round the system converges: plan
empty, no leaked link, namespace or rule, no address twice, names resolve, and after
everything is deleted no netctl process runs and the state directory holds the store only.

`NETCTL_KILL_ROUNDS=N` runs N rounds (default 6) for a longer campaign.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from controller.cluster import server
from controller.cluster.lab import NETCTL as LAB_NETCTL
from tests.kernel.test_controller import ControllerProcess, eventually
from tests.manifests import container, manifest, network
from tests.multihost import apply, ip_of, lab, pings, wait_until
from tests.multihost import container as overlay_container
from tests.multihost import network as overlay_network
from tests.sandbox_host import SandboxHost

ROUNDS = int(os.environ.get("NETCTL_KILL_ROUNDS", "6"))
STATE = "$NETCTL_STATE_DIR"  # expanded by the sandbox's shell
POOL = [f"w{i}" for i in range(6)]


def links(host: SandboxHost) -> list[dict[str, object]]:
    return [link for link in json.loads(host.run("ip -j link").stdout) if link["ifname"] != "lo"]


def netctl_processes(host: SandboxHost) -> list[str]:
    """Command lines of netctl's processes in the sandbox (the controller, the DNS server)."""
    out = host.run("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done").stdout
    return [line for line in out.splitlines()
            if ("bin/netctl" in line or "controller.dns" in line) and not line.startswith("sh -c")]


def dns_pids(host: SandboxHost) -> list[int]:
    """The DNS supervisor and its worker, or [] while none runs."""
    pid = f'"{STATE}/dns/pid"'
    result = host.run(f"cat {pid} 2>/dev/null && cat /proc/$(cat {pid})/task/*/children", check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def assert_converged(host: SandboxHost, names: list[str], where: str) -> None:
    assert host.netctl("plan").stdout.strip() == "no changes", where
    assert sorted(host.run("ip netns list").stdout.split()[::3]) == sorted(names), where
    veths = [link for link in links(host) if str(link["ifname"]).startswith("veth")]
    assert len(veths) == len(names), f"{where}: {len(veths)} veths for {names}"
    assert all(str(link.get("ifalias", "")).startswith("netctl:") for link in links(host)), where
    addresses = [a["local"] for c in names for i in json.loads(host.run(f"ip -n {c} -j addr").stdout)
                 for a in i["addr_info"] if a["family"] == "inet" and i["ifname"] != "lo"]
    assert len(addresses) == len(set(addresses)) == len(names), f"{where}: {addresses}"
    if len(names) > 1:  # the embedded DNS answers (a dead server is drift the controller repairs)
        first, second = names[0], names[1]
        want = [ip_of_container(host, second)]
        eventually(lambda: host.exec(first, f"getent hosts {second}", check=False).stdout.split()[:1] == want,
                   timeout=5)


def ip_of_container(host: SandboxHost, name: str) -> str:
    addr = json.loads(host.run(f"ip -n {name} -j -4 addr show eth0").stdout)
    return str(addr[0]["addr_info"][0]["local"])


def assert_nothing_left(host: SandboxHost) -> None:
    assert links(host) == []
    assert host.run("ip netns list").stdout.strip() == ""
    for tool in ("iptables-save", "ip6tables-save"):
        assert "NETCTL" not in host.run(tool).stdout
    assert host.run("ls /etc/netns").stdout.strip() == ""
    # The DNS server exits when it has nothing to serve and takes its files with it.
    eventually(lambda: not netctl_processes(host), timeout=10)
    def left() -> list[str]:
        return sorted(host.run(f'cd "{STATE}" && find . -mindepth 1').stdout.split())

    with contextlib.suppress(AssertionError):
        eventually(lambda: left() == ["./lock", "./state.db"], timeout=5)
    assert left() == ["./lock", "./state.db"]


def test_controller_and_dns_killed_at_random_moments_converge(host: SandboxHost, tmp_path: Path) -> None:
    rng = random.Random(18)
    assert host.run(f'echo "{STATE}"').stdout.strip().startswith("/"), "the state dir is known inside"
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "net.yaml").write_text(network("app", "10.72.0.0/24"))
    present: set[str] = set()
    ctl = ControllerProcess(host, folder, tmp_path / "controller-0.log")
    kills = {"controller": 0, "dns supervisor": 0, "dns worker": 0}
    try:
        for round_ in range(ROUNDS):
            # A change: one to three containers come or go.
            for name in rng.sample(POOL, rng.randint(1, 3)):
                if name in present:
                    (folder / f"{name}.yaml").unlink()
                    present.discard(name)
                else:
                    (folder / f"{name}.yaml").write_text(container(name, "app"))
                    present.add(name)
            time.sleep(rng.uniform(0.0, 0.6))  # then a kill, somewhere in the reconcile
            victim = rng.choice(list(kills))
            pids = dns_pids(host)
            if victim == "controller" or not pids:
                victim = "controller"
                ctl.stop(signal.SIGKILL)
                ctl = ControllerProcess(host, folder, tmp_path / f"controller-{round_ + 1}.log")
            else:
                host.run(["kill", "-9", str(pids[0 if victim == "dns supervisor" else -1])], check=False)
            kills[victim] += 1
            ctl.wait_idle(timeout=30)
            eventually(lambda: host.netctl("plan").stdout.strip() == "no changes", timeout=15)
            assert_converged(host, sorted(present), f"round {round_}: killed the {victim}")
        for path in folder.iterdir():
            path.unlink()
        eventually(lambda: host.run("ip netns list").stdout.strip() == "", timeout=15)
        ctl.wait_idle(timeout=30)
    finally:
        ctl.stop(signal.SIGTERM)
    assert_nothing_left(host)
    print(f"random kills: {kills} (every round converged)")


@pytest.mark.skipif(not server.available(), reason="etcd is not installed")
def test_overlay_apply_killed_at_every_action_and_agent_killed_at_random() -> None:
    """On a two-host lab: SIGKILL after every action of an overlay apply on host1, then apply
    again; the agents are killed at random moments and restarted; in the end the containers
    reach each other across hosts and a delete leaves nothing."""
    rng = random.Random(1800)
    with lab(hosts=2, ttl=5) as the_lab:
        h1, h2 = the_lab.hosts
        apply(the_lab, h2, overlay_network("ovk"), overlay_container("b1", ["ovk"]))
        docs = [overlay_container("a1", ["ovk"]), overlay_container("a2", ["ovk", "bridge"])]
        path = os.path.join(the_lab.dir, "killed.yaml")
        Path(path).write_text(manifest(*docs))
        points, k = 0, 1
        while True:
            result = h1.run(["env", f"NETCTL_FAILPOINTS=action={k}", *LAB_NETCTL, "apply", "-f", path],
                            check=False)
            assert result.returncode in (-9, 128 + 9, 0), (k, result.returncode, result.stderr[-500:])
            if rng.random() < 0.3:  # the agent dies too, at a moment of its own
                agent = rng.choice(the_lab.hosts)
                assert agent.agent is not None
                agent.agent.kill()
                agent.agent.wait()
                the_lab.start_agent(agent)
            h1.netctl("apply", "-f", path)
            assert h1.netctl("plan").stdout.strip() == "no changes", f"overlay apply killed after {k}"
            if result.returncode == 0:
                break
            points += 1
            h1.netctl("delete", "-f", path)
            k += 1
        b1 = ip_of(h2, "b1")
        for name in ("a1", "a2"):
            wait_until(lambda name=name: pings(h1, name, b1), timeout=15)
        addresses = [ip_of(h1, "a1"), ip_of(h1, "a2"), b1]
        assert len(set(addresses)) == 3, addresses
        h1.netctl("delete", "-f", path)
        assert h1.netctl("plan").stdout.strip() == "no changes"
        assert points >= 10, points
        print(f"overlay kill points: {points} (every one converged)")
