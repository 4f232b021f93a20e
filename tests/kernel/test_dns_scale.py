"""Past 1,024 descriptors: the DNS server and the controller with 520 containers.

The DNS worker holds two sockets per container, its supervisor a copy of each, the controller
a netlink socket per namespace: all past 1,024 at this size. libnftables (the worker's
127.0.0.11:53 redirect) waits with select(), which aborts the process when its own socket
lands at 1,024 or above; Python's select.select refuses such a descriptor too. Before the fix
the worker died in a loop at ~512 containers and answered nothing.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.kernel.test_controller import ControllerProcess, eventually
from tests.manifests import container, manifest, network
from tests.sandbox_host import STATE_DIR, SandboxHost

N = 520


def answers(host: SandboxHost, asker: str, name: str) -> bool:
    out = host.netctl("exec", asker, "--", "dig", "+short", "+tries=1", "+time=2", "@127.0.0.11",
                      name, check=False)
    return out.returncode == 0 and bool(out.stdout.strip())


def dns_status(host: SandboxHost) -> dict[str, object]:
    result: dict[str, object] = json.loads(host.netctl("-o", "json", "dns", "status").stdout)
    return result


def fds_of(host: SandboxHost, pid: object) -> int:
    """Descriptors of a process, by its pid in the sandbox."""
    return int(host.run(f"ls /proc/{pid}/fd | wc -l").stdout)


def controller_fds(host: SandboxHost) -> int:
    """Descriptors of the controller, found from outside (its pid here is not the sandbox's)."""
    counts = []
    for pid in host.processes():  # the controller and the wrappers that started it
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"\0controller\0" in f.read():
                counts.append(len(os.listdir(f"/proc/{pid}/fd")))
    assert counts, "no controller process"
    return max(counts)


def test_dns_and_controller_past_1024_descriptors(host: SandboxHost, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "many.yaml").write_text(
        manifest(network("many", "10.66.0.0/16"), *(container(f"m{i}", "many") for i in range(N)))
    )
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log")
    try:
        last = f"m{N - 1}"
        eventually(lambda: answers(host, last, "m0") and answers(host, "m0", last), timeout=60, interval=0.5)
        status = dns_status(host)
        assert fds_of(host, status["pid"]) > 2 * N and controller_fds(host) > N
        log = host.run(f"cat {STATE_DIR}/dns/log").stdout
        assert "worker exited" not in log, log

        # A killed worker: its successor inherits 1,040 sockets and still writes redirects.
        host.run(f"kill -9 {status['pid']}")
        eventually(lambda: dns_status(host)["pid"] != status["pid"], timeout=10)
        (folder / "one.yaml").write_text(container("late", "many"))
        eventually(lambda: answers(host, "late", last) and answers(host, last, "late"),
                   timeout=30, interval=0.5)

        # A killed supervisor: the controller (its pidfd past 1,024) sees it and starts a new one.
        host.run(f"kill -9 {status['supervisor']}")
        eventually(lambda: dns_status(host)["supervisor"] != status["supervisor"], timeout=15, interval=0.5)
        eventually(lambda: answers(host, "m7", "late"), timeout=30, interval=0.5)
        assert ctl.proc.poll() is None
        assert not [e for e in ctl.events() if e.get("level") == "error"], ctl.events()
    finally:
        ctl.stop(signal.SIGKILL)
