"""Drift repair and failure isolation by the running controller, inside a sandbox host.

Bounds: drift the kernel notifies (netlink) or inotify reports is repaired within a second;
what only the periodic resync sees (firewall rules) within the resync interval plus a second.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.test_controller import (
    CONTAINER,
    SEED,
    ControllerProcess,
    eventually,
    ipv4,
    namespaces,
    status,
    timed,
)
from tests.sandbox_host import SandboxHost

EVENT_BOUND = 1.0  # seconds: netlink- and inotify-visible drift
RESYNC = 2.0  # the resync interval these tests run with


@pytest.fixture
def tour(host: SandboxHost, tmp_path: Path) -> Iterator[ControllerProcess]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    shutil.copy(SEED, folder / "tour.yaml")
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log", "--resync-interval", str(RESYNC))
    try:
        eventually(lambda: "container3" in namespaces(host), timeout=10)
        ctl.wait_idle()
        yield ctl
    finally:
        ctl.stop(signal.SIGKILL)


def link(host: SandboxHost, name: str, netns: str | None = None) -> dict[str, object] | None:
    cmd = ["ip", *(["-n", netns] if netns else []), "-j", "link", "show", name]
    result = host.run(cmd, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def veth_of(host: SandboxHost, container: str) -> str:
    peer = json.loads(host.run(["ip", "-n", container, "-j", "link", "show", "eth0"]).stdout)[0]
    index = peer["link_index"]
    return str(next(entry["ifname"] for entry in json.loads(host.run("ip -j link").stdout)
                    if entry["ifindex"] == index))


def test_every_kind_of_drift_is_repaired_within_its_bound(host: SandboxHost, tour: ControllerProcess) -> None:
    repaired: dict[str, float] = {}

    veth = veth_of(host, "container1")
    host.run(["ip", "link", "del", veth])
    repaired["veth deleted"] = timed(lambda: link(host, "eth0", "container1") is not None
                                     and link(host, veth) is not None)

    host.run(["ip", "-n", "container3", "addr", "flush", "dev", "eth0"])
    repaired["address removed"] = timed(lambda: ipv4(host, "container3") == ["172.18.0.2"])

    host.run(["ip", "link", "set", "netctl0", "down"])
    repaired["bridge set down"] = timed(lambda: "UP" in str((link(host, "netctl0") or {}).get("flags")))

    host.run(["ip", "netns", "del", "container2"])
    repaired["namespace deleted"] = timed(lambda: ipv4(host, "container2") == ["172.17.0.3"])

    host.run("echo '10.9.9.9 evil' >> /etc/netns/container1/hosts")
    repaired["hosts file edited"] = timed(
        lambda: "evil" not in host.run("cat /etc/netns/container1/hosts").stdout
    )

    for what, seconds in repaired.items():
        assert seconds < EVENT_BOUND, f"{what}: repaired after {seconds:.2f}s"

    # Only the resync sees the firewall: a netctl rule removed comes back within the interval.
    host.run(["iptables", "-t", "nat", "-F", "NETCTL-POSTROUTING"])
    took = timed(lambda: "MASQUERADE" in host.run("iptables -t nat -S NETCTL-POSTROUTING").stdout,
                 timeout=RESYNC + 3)
    assert took < RESYNC + 1.0

    # The data plane works again, and every repair was logged with what drifted.
    host.exec("container1", "ping -c1 -W2 172.17.0.3")
    host.exec("container2", "ping -c1 -W2 172.17.0.2")
    drift = [d for e in tour.events("drift repaired") for d in e["drift"]]
    assert f"+ veth {veth}" in drift
    assert "+ address container3/172.18.0.2/16" in drift
    assert "~ bridge netctl0: up False -> True" in drift
    assert "+ netns container2" in drift
    assert "~ file /etc/netns/container1/hosts: content changed" in drift
    assert any(d.startswith("~ chain") and "NETCTL-POSTROUTING" in d for d in drift)
    triggers = {t for e in tour.events() for t in e.get("trigger", ())}
    # Netlink and inotify told: the host's end or the container's end of the veth, the namespace.
    assert {f"link {veth} deleted", "link eth0 deleted"} & triggers and "namespace deleted" in triggers
    rows = status(host)
    assert rows[("Container", "container2")]["DriftRepairedAt"]
    assert "drift repaired at" in host.netctl("status").stdout


def test_our_own_changes_are_not_drift(host: SandboxHost, tour: ControllerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    for i in range(5):
        (folder / f"c{i}.yaml").write_text(CONTAINER.format(name=f"c{i}", net="bridge"))
    eventually(lambda: len(namespaces(host)) == 9)
    tour.wait_idle()
    assert tour.events("drift repaired") == []
    assert host.netctl("plan").stdout.strip() == "no changes"
    # No storm: a few echo/drift checks after the change, then quiet.
    count = len(tour.reconciled())
    time.sleep(1.0)
    assert len(tour.reconciled()) - count <= 1  # at most the periodic resync


def test_a_failing_container_does_not_block_the_others(host: SandboxHost, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    # Its files cannot be written (a read-only mount in the sandbox's mount namespace).
    host.run("mkdir -p /etc/netns/blocked && mount -t tmpfs -o ro tmpfs /etc/netns/blocked")
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log")
    try:
        eventually(lambda: ctl.reconciled(), timeout=10)
        (folder / "app.yaml").write_text(
            "---\n".join(CONTAINER.format(name=n, net="bridge") for n in ("alpha", "blocked", "zulu"))
        )
        eventually(lambda: status(host).get(("Container", "blocked"), {}).get("State") == "failed")
        rows = status(host)
        assert "retrying" in rows[("Container", "blocked")]["Reason"]
        assert rows[("Container", "alpha")]["State"] == rows[("Container", "zulu")]["State"] == "converged"
        host.exec("zulu", "ping -c1 -W2 " + ipv4(host, "alpha")[0])  # zulu's files come after blocked's
        failures = ctl.events("container failed, others continue")
        assert failures and failures[0]["netns"] == "blocked"

        host.run("umount /etc/netns/blocked")  # the obstacle goes: the next retry succeeds
        eventually(lambda: status(host)[("Container", "blocked")]["State"] == "converged", timeout=8)
        host.exec("blocked", "ping -c1 -W2 " + ipv4(host, "alpha")[0])
        delays = [e["retry_in"] for e in ctl.events("container failed, others continue")]
        assert delays == sorted(delays) and delays[0] <= 1.0  # exponential backoff
    finally:
        ctl.stop(signal.SIGKILL)


def test_a_killed_dns_server_is_drift_restarted_at_once(host: SandboxHost, tour: ControllerProcess) -> None:
    supervisor = json.loads(host.netctl("-o", "json", "dns", "status").stdout)["supervisor"]
    start = time.monotonic()

    def answers() -> bool:  # the embedded server itself (getent would find /etc/hosts)
        out = host.netctl("exec", "container3", "--", "dig", "+short", "+tries=1", "+time=1",
                          "@127.0.0.11", "container3.isolated_nw", check=False)
        return out.returncode == 0 and bool(out.stdout.strip())
    assert answers()
    host.run(f"kill -9 {supervisor}")
    took = timed(answers, timeout=10)
    print(f"DNS answered again {took:.2f} s after the kill")
    # Detection + restart within 1 s, plus the probe's own cost and a cold interpreter start
    # (2.08 s once on a quiet machine, first test of the run); the latency is the benchmark's.
    assert took < EVENT_BOUND + 2.0, took
    restarted = eventually(lambda: [e for e in tour.events("drift repaired")
                                    if "service" in json.dumps(e)])
    assert restarted, tour.events()
    assert json.loads(host.netctl("-o", "json", "dns", "status").stdout)["supervisor"] != supervisor
    assert time.monotonic() - start < 15


def test_a_network_the_kernel_refuses_is_held_and_the_others_converge(
    host: SandboxHost, tmp_path: Path,
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    host.run("ip link add taken0 type veth peer name taken1")  # not netctl's: the bridge fails
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log")
    try:
        eventually(lambda: ctl.reconciled(), timeout=10)
        (folder / "bad.yaml").write_text(
            "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: taken}\n"
            "spec: {options: {com.docker.network.bridge.name: taken0}}\n")
        (folder / "app.yaml").write_text(
            "---\n".join(CONTAINER.format(name=n, net="bridge") for n in ("alpha", "zulu")))
        eventually(lambda: status(host).get(("Container", "zulu"), {}).get("State") == "converged")
        bad = ("File", str(folder / "bad.yaml"))  # reported as an invalid file is
        eventually(lambda: status(host).get(bad, {}).get("State") == "failed")
        rows = status(host)
        assert "create link:/taken0 failed" in rows[bad]["Reason"] and "rolled back" in rows[bad]["Reason"]
        assert rows[("Container", "alpha")]["State"] == "converged"
        host.exec("zulu", "ping -c1 -W2 " + ipv4(host, "alpha")[0])
        # Held, not retried in a loop: a few reconciles at most, no leaked devices.
        time.sleep(3)
        assert len(ctl.events("reconciled")) < 6, ctl.events("reconciled")
        devices = {link["ifname"] for link in json.loads(host.run("ip -j link").stdout)}
        assert {"taken0", "taken1"} <= devices and not any(d.startswith("br") for d in devices)
    finally:
        ctl.stop(signal.SIGKILL)
        host.run("ip link del taken0", check=False)
