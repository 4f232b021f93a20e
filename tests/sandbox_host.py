"""Throwaway sandbox hosts for tests: `netctl sandbox` kept alive, commands run inside it.

A host is a `netctl sandbox -- sleep` process; commands enter its network, mount and UTS
namespaces with nsenter. Closing the host kills every process left in its network
namespace, so the namespaces (and everything netctl made in them) vanish with it: tests
never touch the machine's own network.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from controller.kernel.sandbox import cable, join_argv

ROOT = Path(__file__).resolve().parent.parent
NETCTL = [sys.executable, "-m", "controller.cli"]
STATE_DIR = "/var/lib/netctl"


class SandboxHost:
    def __init__(self, name: str = "sandbox", firewall: str = "iptables") -> None:
        self.name = name
        self.firewall = firewall  # the firewall backend every netctl command here uses
        self.proc = subprocess.Popen(
            [*NETCTL, "--state-dir", STATE_DIR, "sandbox", "--", "sleep", "infinity"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self._wait_for_child()
        self.netns_inode = os.stat(f"/proc/{self.pid}/ns/net").st_ino
        if self.netns_inode == os.stat("/proc/self/ns/net").st_ino:
            self.close()
            raise RuntimeError("sandbox did not get its own network namespace")

    def _wait_for_child(self) -> int:
        """The `sleep` inside the sandbox (netctl -> keeper -> init -> sleep)."""
        deadline = time.monotonic() + 30  # a loaded CI machine can be slow to fork
        while time.monotonic() < deadline:
            for child in _descendants(self.proc.pid):
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "sleep":
                        return child
                except FileNotFoundError:
                    continue
            if self.proc.poll() is not None:
                raise RuntimeError(f"netctl sandbox exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("netctl sandbox did not start")

    def env(self) -> dict[str, str]:
        return {**os.environ, "NETCTL_STATE_DIR": STATE_DIR, "NETCTL_SANDBOX": "1",
                "NETCTL_FIREWALL_BACKEND": self.firewall}

    def enter_argv(self) -> list[str]:
        return join_argv(self.pid, str(ROOT))

    def run(
        self, argv: Sequence[str] | str, check: bool = True, timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["sh", "-c", argv] if isinstance(argv, str) else list(argv)
        env = self.env()
        result = subprocess.run(
            [*self.enter_argv(), *cmd], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=timeout, input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        env = self.env()
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [*self.enter_argv(), *argv], cwd=ROOT, env=env, text=True, **kwargs
        )

    def netctl(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run([*NETCTL, *args], check=check, timeout=timeout)

    def exec(self, container: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.netctl("exec", container, "--", "sh", "-c", command, check=check)

    def write(self, path: str, text: str) -> None:
        self.run(["sh", "-c", f"mkdir -p \"$(dirname '{path}')\" && cat > '{path}'"], input=text)

    def processes(self) -> list[int]:
        """Every process whose network namespace is this host's (or a container's in it)."""
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.pid:
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == self.netns_inode:
                    out.append(int(entry))
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                continue
        return out

    def close(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except FileNotFoundError:
            children = []
        out.extend(children)
        todo.extend(children)
    return out


PROBE = [sys.executable, str(ROOT / "tests" / "netprobe.py")]


def serve(host: SandboxHost, port: int, namespaces: Sequence[str]) -> subprocess.Popen[str]:
    """Start netprobe servers on `port` in these namespaces of `host` ('-': the host's own)."""
    proc = host.popen([*PROBE, "serve", str(port), *namespaces], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def probe(host: SandboxHost, proto: str, triples: Sequence[tuple[str, str, int]]) -> dict[str, str | None]:
    """{'SRC>DST:PORT': address the server saw, or None} for connections tried in parallel."""
    args = [str(x) for t in triples for x in t]
    out = host.run([*PROBE, proto, *args]).stdout
    result: dict[str, str | None] = json.loads(out)
    return result


def wire(a: SandboxHost, b: SandboxHost, a_cidr: str, b_cidr: str, name: str = "uplink") -> None:
    """A cable between two sandbox hosts: a veth with one end in each, addressed and up."""
    cable(a.pid, name, b.pid, name)
    a.run(["ip", "addr", "add", a_cidr, "dev", name])
    a.run(["ip", "link", "set", name, "up"])
    b.run(["ip", "addr", "add", b_cidr, "dev", name])
    b.run(["ip", "link", "set", name, "up"])
