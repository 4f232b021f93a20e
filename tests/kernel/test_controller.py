"""`netctl controller` as a real process in a sandbox host: the watched folder (GitOps).

The manifests folder is a pytest tmp_path: the test writes files directly, the controller
(inside the sandbox's namespaces, same filesystem) sees them through inotify.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.sandbox_host import NETCTL, ROOT, SandboxHost

SEED = ROOT / "examples" / "seed-tour.yaml"
T = TypeVar("T")

CONTAINER = ("apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
             "spec: {{networks: [{net}]}}\n")


class ControllerProcess:
    """`netctl --log-format json controller --manifests DIR` inside the sandbox."""

    def __init__(self, host: SandboxHost, folder: Path, log: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.host = host
        self.log = log
        cmd = [*NETCTL, "--log-format", "json", "controller", "--manifests", str(folder), *args]
        if env:
            cmd = ["env", *(f"{k}={v}" for k, v in env.items()), *cmd]
        with open(log, "a") as err:
            self.proc = host.popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.proc.pid

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and (name is None or event.get("event") == name):
                    out.append(event)
        return out

    def reconciled(self) -> list[dict[str, Any]]:
        return self.events("reconciled")

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Until a reconcile has finished and the log stayed still for a while (no reconcile
        running, echo passes included)."""
        def idle() -> bool:
            size = self.log.stat().st_size
            time.sleep(0.5)
            events = self.events()
            return (self.log.stat().st_size == size and bool(self.reconciled())
                    and events[-1].get("event") != "action")
        eventually(idle, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None


def eventually(check: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except AssertionError as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout}s: {last!r}")


def timed(check: Callable[[], object], timeout: float = 5.0) -> float:
    start = time.monotonic()
    eventually(check, timeout)
    return time.monotonic() - start


def link_indexes(host: SandboxHost) -> dict[str, int]:
    """Every interface of the sandbox and of its namespaces, by name: recreated ones change."""
    out = {f"/{link['ifname']}": link["ifindex"] for link in json.loads(host.run("ip -j link").stdout)}
    for ns in namespaces(host):
        for link in json.loads(host.run(["ip", "-n", ns, "-j", "link"]).stdout):
            out[f"{ns}/{link['ifname']}"] = link["ifindex"]
    return out


def ipv4(host: SandboxHost, container: str) -> list[str]:
    info = json.loads(host.run(["ip", "-n", container, "-j", "addr", "show"]).stdout)
    return [a["local"] for link in info for a in link["addr_info"]
            if a["family"] == "inet" and link["ifname"] != "lo"]


def namespaces(host: SandboxHost) -> set[str]:
    return {line.split()[0] for line in host.run("ip netns list").stdout.splitlines() if line.strip()}


def status(host: SandboxHost) -> dict[tuple[str, str], dict[str, Any]]:
    rows = json.loads(host.netctl("-o", "json", "status").stdout)
    return {(r["Kind"], r["Name"]): r for r in rows}


def write(path: Path, text: str) -> None:
    """As an editor saves: a temp file renamed over the target (complete at once)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "manifests"
    path.mkdir()
    return path


@pytest.fixture
def controller(host: SandboxHost, folder: Path, tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log", "--resync-interval", "30")
    try:
        eventually(lambda: ctl.reconciled(), timeout=10)
        yield ctl
    finally:
        ctl.stop(signal.SIGKILL)


def test_the_folder_is_the_desired_state(
    host: SandboxHost, folder: Path, controller: ControllerProcess
) -> None:
    # Drop the seed tour in: containers talk within a few seconds (imports, first reconcile).
    shutil.copy(SEED, folder / "tour.yaml")
    eventually(lambda: host.exec("container1", "ping -c1 -W1 172.17.0.3", check=False).returncode == 0,
               timeout=10)
    controller.wait_idle()
    assert host.netctl("plan").stdout.strip() == "no changes"
    rows = status(host)
    assert rows[("Container", "container1")]["Source"] == f"controller:{folder}/tour.yaml:7"
    assert rows[("Container", "container1")]["State"] == "converged"

    # Edit a subnet: the network moves, its container follows.
    text = SEED.read_text().replace(
        "metadata:\n  name: isolated_nw\nspec:\n  driver: bridge\n",
        "metadata:\n  name: isolated_nw\nspec:\n  driver: bridge\n"
        "  ipam: {config: [{subnet: 10.50.0.0/24}]}\n",
    )
    assert "10.50.0.0/24" in text
    write(folder / "tour.yaml", text)
    assert timed(lambda: ipv4(host, "container3") == ["10.50.0.2"]) < 2.0

    # Add a container in a new file in a new subfolder, then remove it again.
    (folder / "teams").mkdir()
    write(folder / "teams" / "extra.yaml", CONTAINER.format(name="extra", net="isolated_nw"))
    eventually(lambda: host.exec("extra", "ping -c1 -W1 10.50.0.2", check=False).returncode == 0)
    (folder / "teams" / "extra.yaml").unlink()
    assert timed(lambda: "extra" not in namespaces(host)) < 2.0
    controller.wait_idle()

    # Rename a file: the objects moved, nothing is touched.
    before = link_indexes(host)
    actions = sum(e["actions"] for e in controller.reconciled())
    (folder / "tour.yaml").rename(folder / "renamed.yaml")
    eventually(lambda: status(host)[("Container", "container1")]["Source"].startswith(
        f"controller:{folder}/renamed.yaml"))
    controller.wait_idle()
    assert sum(e["actions"] for e in controller.reconciled()) == actions
    assert link_indexes(host) == before

    # Remove the file: everything it declared is pruned.
    (folder / "renamed.yaml").unlink()
    eventually(lambda: namespaces(host) == set(), timeout=3)
    eventually(lambda: not [k for k in status(host) if k[0] == "Container"])
    assert "isolated_nw" not in host.netctl("network", "ls").stdout


def test_a_bad_file_never_breaks_what_works(
    host: SandboxHost, folder: Path, controller: ControllerProcess
) -> None:
    shutil.copy(SEED, folder / "tour.yaml")
    write(folder / "web.yaml", CONTAINER.format(name="web", net="bridge"))
    eventually(lambda: "web" in namespaces(host) and "container1" in namespaces(host), timeout=10)
    controller.wait_idle()
    before = link_indexes(host)
    web_addresses = ipv4(host, "web")

    # An invalid edit: reported with its line, the old web is kept, other files still apply.
    write(folder / "web.yaml", "apiVersion: netctl/v1\nkind: Container\nmetadata: {name: web}\n"
          "spec:\n  networks: [bridge]\n  ports: ['70000:80']\n")
    write(folder / "more.yaml", CONTAINER.format(name="more", net="bridge"))
    eventually(lambda: "more" in namespaces(host))
    file_row = eventually(lambda: status(host).get(("File", str(folder / "web.yaml"))))
    assert file_row["State"] == "failed"
    assert f"{folder}/web.yaml:6 spec.ports[0]" in file_row["Reason"]
    web = status(host)[("Container", "web")]
    assert web["State"] == "failed" and "last good state kept" in web["Reason"]
    assert all(link_indexes(host).get(k) == v for k, v in before.items())
    rejected = controller.events("manifest rejected, last good state kept")
    assert rejected and rejected[0]["file"] == str(folder / "web.yaml")
    assert "web.yaml:6 spec.ports[0]" in rejected[0]["problems"][0]

    # A conflict between two files: both reported, neither object changes.
    write(folder / "clash.yaml", CONTAINER.format(name="web", net="none"))
    eventually(lambda: status(host).get(("File", str(folder / "clash.yaml"))))
    rows = status(host)
    assert "duplicate Container 'web'" in rows[("File", str(folder / "clash.yaml"))]["Reason"]
    assert "duplicate Container 'web'" in rows[("File", str(folder / "web.yaml"))]["Reason"]
    assert ipv4(host, "web") == web_addresses  # still the old web, on the bridge
    (folder / "clash.yaml").unlink()

    # Fixed: applied, the error is gone.
    write(folder / "web.yaml", "apiVersion: netctl/v1\nkind: Container\nmetadata: {name: web}\n"
          "spec: {networks: [bridge], hostname: fixed}\n")
    eventually(lambda: host.exec("web", "hostname").stdout.strip() == "fixed")
    eventually(lambda: not [k for k in status(host) if k[0] == "File"])
    assert status(host)[("Container", "web")]["State"] == "converged"


def test_half_written_files_and_editor_noise_are_not_read(
    host: SandboxHost, folder: Path, controller: ControllerProcess
) -> None:
    controller.wait_idle()
    count = len(controller.reconciled())
    for name in (".web.yaml.swp", "web.yaml~", "#web.yaml#", "4913", ".hidden.yaml"):
        (folder / name).write_text("garbage: [")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD.yaml").write_text("garbage: [")
    time.sleep(1.0)
    assert len(controller.reconciled()) == count  # nothing to reconcile
    assert not [k for k in status(host) if k[0] == "File"]

    # A file open for writing, half written: not read until it is closed.
    with open(folder / "slow.yaml", "w") as f:
        f.write("apiVersion: netctl/v1\nkind: Container\nmeta")
        f.flush()
        time.sleep(1.0)
        assert not [k for k in status(host) if k[0] == "File"], "a half-written file was read"
        f.write("data: {name: slow}\nspec: {networks: [bridge]}\n")
    eventually(lambda: "slow" in namespaces(host), timeout=3)
    assert not [k for k in status(host) if k[0] == "File"]


def test_a_burst_of_fifty_files_is_one_or_few_reconciles(
    host: SandboxHost, folder: Path, controller: ControllerProcess
) -> None:
    controller.wait_idle()
    count = len(controller.reconciled())
    staging = folder.parent / "staging"
    staging.mkdir()
    for i in range(50):
        (staging / f"c{i}.yaml").write_text(CONTAINER.format(name=f"c{i}", net="bridge"))
    start = time.monotonic()
    for i in range(50):  # as `git checkout` does: one file after the other, quickly
        shutil.copy(staging / f"c{i}.yaml", folder / f"c{i}.yaml")
    eventually(lambda: len(namespaces(host)) == 50, timeout=15)
    took = time.monotonic() - start
    controller.wait_idle()
    with_files = [e for e in controller.reconciled()[count:] if "files" in e["reasons"]]
    assert 1 <= len(with_files) <= 3, with_files
    assert took < 10, took
    addresses = {ipv4(host, f"c{i}")[0] for i in range(50)}
    assert len(addresses) == 50
    assert host.netctl("plan").stdout.strip() == "no changes"


def test_objects_applied_from_a_shell_are_kept_and_shown_with_their_source(
    host: SandboxHost, folder: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    write(folder / "web.yaml", CONTAINER.format(name="web", net="bridge"))
    eventually(lambda: "web" in namespaces(host), timeout=10)
    adhoc = tmp_path / "adhoc.yaml"
    adhoc.write_text(CONTAINER.format(name="adhoc", net="bridge"))
    host.netctl("apply", "-f", str(adhoc))  # while the controller runs: the lock is free
    write(folder / "db.yaml", CONTAINER.format(name="db", net="bridge"))
    eventually(lambda: "db" in namespaces(host))
    controller.wait_idle()
    assert namespaces(host) == {"web", "adhoc", "db"}
    rows = status(host)
    assert rows[("Container", "adhoc")]["Source"] == f"apply:{adhoc}:1"
    assert rows[("Container", "adhoc")]["Origin"] == "apply"
    assert rows[("Container", "db")]["Origin"] == f"controller:{folder}"
    table = host.netctl("status", "--wide")
    assert table.stdout.splitlines()[0].split() == [
        "KIND", "NAME", "SOURCE", "STATE", "REASON", "LAST-RECONCILE", "DURATION"
    ]
    assert f"apply:{adhoc}:1" in table.stdout
    assert "controller: running" in table.stderr
