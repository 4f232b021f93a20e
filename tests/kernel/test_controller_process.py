"""The controller's life as a process: signals, restarts, crashes, the lock, metrics."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from tests.kernel.test_controller import (
    CONTAINER,
    SEED,
    ControllerProcess,
    eventually,
    ipv4,
    link_indexes,
    namespaces,
)
from tests.sandbox_host import NETCTL, SandboxHost


def many(folder: Path, n: int) -> list[str]:
    names = [f"c{i:02d}" for i in range(n)]
    (folder / "many.yaml").write_text("---\n".join(CONTAINER.format(name=c, net="bridge") for c in names))
    return names


def test_sigterm_leaves_the_network_and_a_restart_adopts_it(host: SandboxHost, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    shutil.copy(SEED, folder / "tour.yaml")
    log = tmp_path / "controller.log"
    ctl = ControllerProcess(host, folder, log)
    try:
        eventually(lambda: "container3" in namespaces(host), timeout=10)
        ctl.wait_idle()
        # One controller per state directory.
        second = host.netctl("controller", "--manifests", str(folder), check=False, timeout=20)
        assert second.returncode == 3 and "another controller" in second.stderr
        # SIGHUP: a full resync now.
        ctl.proc.send_signal(signal.SIGHUP)
        eventually(lambda: any("signal" in e["reasons"] and e["scope"] == "all" for e in ctl.reconciled()))
        before = link_indexes(host)
        assert ctl.stop(signal.SIGTERM, timeout=5) == 0
        assert ctl.events("controller stopped: the network is left as it is")
    finally:
        ctl.stop(signal.SIGKILL)

    # Down: containers keep working.
    host.exec("container1", "ping -c1 -W2 172.17.0.3")
    assert link_indexes(host) == before

    # Up again: it adopts what it owns, nothing recreated.
    restarted = ControllerProcess(host, folder, tmp_path / "restart.log")
    try:
        first = eventually(lambda: restarted.reconciled(), timeout=10)[0]
        assert first["reasons"] == ["startup"] and first["actions"] == 0
        assert link_indexes(host) == before
    finally:
        restarted.stop(signal.SIGKILL)


def test_kill_9_mid_reconcile_then_restart_converges_without_recreating(
    host: SandboxHost, tmp_path: Path
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    names = many(folder, 12)
    crashing = ControllerProcess(host, folder, tmp_path / "crash.log",
                                 env={"NETCTL_FAILPOINTS": "action=30"})
    assert crashing.proc.wait(timeout=20) == -9  # SIGKILLed itself in the middle of the plan
    half = link_indexes(host)
    created = [ns for ns in names if ns in namespaces(host)]
    assert created and len(created) == len(names)  # namespaces come first in a plan
    before = {n: ipv4(host, n) for n in names}

    ctl = ControllerProcess(host, folder, tmp_path / "controller.log")
    try:
        eventually(lambda: all(len(ipv4(host, n)) == 1 for n in names), timeout=10)
        ctl.wait_idle()
        assert host.netctl("plan").stdout.strip() == "no changes"
        after = link_indexes(host)
        assert {k: after.get(k) for k in half} == half, "a link that was right was recreated"
        got = {n: ipv4(host, n)[0] for n in names}
        assert len(set(got.values())) == len(names), "an address was handed out twice"
        assert all(got[n] in before[n] for n in names if before[n]), "an address was reassigned"
        assert got["c00"] == "172.17.0.2" and got["c11"] == "172.17.0.13"  # allocated before the crash
        host.exec("c00", "ping -c1 -W2 172.17.0.13")
    finally:
        ctl.stop(signal.SIGKILL)


def test_metrics_endpoint(host: SandboxHost, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    shutil.copy(SEED, folder / "tour.yaml")
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log", "--metrics-address", "127.0.0.1:9464")
    try:
        eventually(lambda: "container3" in namespaces(host), timeout=10)
        ctl.wait_idle()
        host.run(["ip", "link", "set", "netctl0", "down"])
        eventually(lambda: ctl.events("drift repaired"))

        def scrape() -> str:
            return host.run([*NETCTL[:1], "-c", (
                "import urllib.request;"
                "print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())"
            )]).stdout

        def repaired() -> str:
            text = scrape()
            return text if 'netctl_drift_repairs_total{kind="bridge"} 1' in text else ""

        text = eventually(repaired)
        assert 'netctl_managed_objects{kind="container"} 4' in text
        assert 'netctl_managed_objects{kind="network"} 4' in text
        assert 'netctl_reconciles_total{result="ok"}' in text
        assert "netctl_reconcile_duration_seconds_count" in text
        assert "netctl_invalid_manifests 0" in text
    finally:
        ctl.stop(signal.SIGKILL)
