"""`netctl sandbox --hosts N`: the seed's overlay walkthrough on one machine, safely.

    etcd sandbox   the underlay bridge `ul` (10.200.0.1/24) and etcd on 10.200.0.1:2379
    host1..hostN   sandbox hosts, each with `ul0` (10.200.0.11, .12, ...) plugged into `ul`
                   by a veth, its own /run/netns, /etc/netns and state, and an overlay agent

Every address and every packet stays inside these namespaces; closing the lab kills every
process in them (also those inside the hosts' containers), and the namespaces vanish.
Tests and benchmarks build on the same class.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.cluster.etcd import Etcd
from controller.cluster.server import EtcdServer, in_netns_of
from controller.kernel.sandbox import cable, join_argv, spawn

UNDERLAY_PREFIX = "10.200.0."
ETCD_ADDRESS = UNDERLAY_PREFIX + "1"
ETCD_PORT = 2379
STATE_DIR = "/var/lib/netctl"  # private to each sandbox host
ROOT = str(Path(__file__).resolve().parents[2])
NETCTL = [sys.executable, "-m", "controller.cli"]


def host_address(index: int) -> str:
    return f"{UNDERLAY_PREFIX}{10 + index}"


def spawn_sandbox(hostname: str, own_pids: bool = True) -> int:
    """A detached sandbox host that sleeps until killed: the pid of its init."""
    _, init = spawn(STATE_DIR, hostname, ["sleep", "infinity"], detach=True, own_pids=own_pids)
    return init


@dataclass
class LabHost:
    """One sandbox host; commands run in it with nsenter (network, mount, UTS)."""

    name: str
    pid: int
    address: str
    env: Mapping[str, str] = field(default_factory=dict)
    agent: subprocess.Popen[bytes] | None = None

    def enter_argv(self) -> list[str]:
        return join_argv(self.pid, ROOT)

    def environment(self) -> dict[str, str]:
        return {**os.environ, "NETCTL_STATE_DIR": STATE_DIR, "NETCTL_SANDBOX": "1", **self.env}

    def run(
        self, argv: Sequence[str] | str, check: bool = True, timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["sh", "-c", argv] if isinstance(argv, str) else list(argv)
        result = subprocess.run(
            [*self.enter_argv(), *cmd], cwd=ROOT, env=self.environment(), capture_output=True,
            text=True, timeout=timeout, input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name}: {cmd} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}"
            )
        return result

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [*self.enter_argv(), *argv], cwd=ROOT, env=self.environment(), text=True, **kwargs
        )

    def netctl(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run([*NETCTL, *args], check=check, timeout=timeout)

    def exec(self, container: str, command: str, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.netctl("exec", container, "--", "sh", "-c", command, check=check, timeout=timeout)

    def namespaces(self) -> set[int]:
        """Inodes of this host's network namespace and of its containers' namespaces."""
        out = set()
        with contextlib.suppress(OSError):
            out.add(os.stat(f"/proc/{self.pid}/ns/net").st_ino)
        folder = f"/proc/{self.pid}/root/run/netns"
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                with contextlib.suppress(OSError):
                    out.add(os.stat(os.path.join(folder, name)).st_ino)
        return out


def kill_namespaces(inodes: set[int], keep: int | None = None) -> None:
    """SIGKILL every process living in one of these network namespaces."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), keep):
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


class Lab:
    def __init__(self, hosts: int, *, ttl: int = 15, mtu: int = 1500) -> None:
        if hosts < 1:
            raise ValueError("a lab needs at least one host")
        self.count = hosts
        self.ttl = ttl
        self.mtu = mtu
        self.dir = tempfile.mkdtemp(prefix="netctl-lab-")
        self.hosts: list[LabHost] = []
        self.etcd_host: LabHost | None = None
        self.etcd: EtcdServer | None = None

    @property
    def store_url(self) -> str:
        return f"etcd://{ETCD_ADDRESS}:{ETCD_PORT}"

    def start(self) -> Lab:
        try:
            # The console host keeps this machine's PID namespace: entering a host's PID
            # namespace is allowed only from an ancestor, and its `hostN` commands do that.
            pid = spawn_sandbox("etcd", own_pids=False)
            self.etcd_host = LabHost("etcd", pid, ETCD_ADDRESS)
            self.etcd_host.run(
                f"ip link add ul type bridge && ip link set ul mtu {self.mtu} up && "
                f"ip addr add {ETCD_ADDRESS}/24 dev ul"
            )
            self.etcd = EtcdServer(
                os.path.join(self.dir, "etcd", "data"), listen=f"{ETCD_ADDRESS}:{ETCD_PORT}",
                prefix=self.etcd_host.enter_argv(), netns_pid=pid,
            )
            self.etcd.start()
            for i in range(1, self.count + 1):
                self.add_host(i)
        except BaseException:
            self.close()
            raise
        return self

    def add_host(self, index: int) -> LabHost:
        assert self.etcd_host is not None
        name = f"host{index}"
        pid = spawn_sandbox(name)
        address = host_address(index)
        host = LabHost(name, pid, address, env={
            "NETCTL_CLUSTER_STORE": self.store_url,
            "NETCTL_ADVERTISE_ADDRESS": address,
            "NETCTL_CLUSTER_STORE_OPT": f"discovery.ttl={self.ttl}",
        })
        self.hosts.append(host)
        cable(pid, "ul0", self.etcd_host.pid, name, mtu=self.mtu)
        host.run(f"ip link set ul0 up && ip addr add {address}/24 dev ul0")
        self.etcd_host.run(["ip", "link", "set", name, "master", "ul", "mtu", str(self.mtu), "up"])
        return host

    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def start_agent(self, host: LabHost) -> None:
        log = open(os.path.join(self.dir, f"{host.name}-agent.log"), "ab")  # noqa: SIM115
        host.agent = subprocess.Popen(
            [*host.enter_argv(), *NETCTL, "--log-level", "info", "overlay", "agent"],
            cwd=ROOT, env=host.environment(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()

    def stop_agent(self, host: LabHost) -> None:
        if host.agent is not None:
            host.agent.terminate()
            try:
                host.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.agent.kill()
                host.agent.wait()
            host.agent = None

    def agent_log(self, host: LabHost) -> str:
        try:
            return Path(self.dir, f"{host.name}-agent.log").read_text()
        except OSError:
            return ""

    @contextlib.contextmanager
    def client(self, timeout: float = 2.0) -> Iterator[Etcd]:
        """An etcd client used inside the etcd sandbox's namespace, for this block only."""
        assert self.etcd_host is not None
        with in_netns_of(self.etcd_host.pid), Etcd([f"http://{ETCD_ADDRESS}:{ETCD_PORT}"],
                                                  timeout=timeout) as client:
            yield client

    def remove_host(self, host: LabHost) -> None:
        """The host dies: every process in it and in its containers is killed at once."""
        inodes = host.namespaces()
        kill_namespaces(inodes)
        with contextlib.suppress(ProcessLookupError):
            os.kill(host.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(host.pid, 0)
        if host.agent is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.agent.wait(timeout=5)
            host.agent = None
        self.hosts.remove(host)

    def close(self) -> None:
        for host in list(self.hosts):
            self.remove_host(host)
        if self.etcd is not None:
            self.etcd.stop(signal.SIGKILL)
        if self.etcd_host is not None:
            kill_namespaces(self.etcd_host.namespaces())
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.etcd_host.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.etcd_host.pid, 0)
            self.etcd_host = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_wrappers(lab: Lab, folder: str) -> None:
    """`host1 CMD...` runs CMD on host1 with its cluster options set, and so on."""
    os.makedirs(folder, exist_ok=True)
    bin_dir = os.path.dirname(sys.executable)
    for host in lab.hosts:
        enter = " ".join('"$PWD"' if a == "$PWD" else shlex.quote(a) for a in join_argv(host.pid, "$PWD"))
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in {
            **host.env, "NETCTL_STATE_DIR": STATE_DIR, "NETCTL_SANDBOX": "1",
        }.items())
        path = os.path.join(folder, host.name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(
                "#!/bin/sh\n"
                f"# {host.name}: sandbox pid {host.pid}, underlay {host.address}\n"
                '[ "$#" -eq 0 ] && set -- /bin/sh\n'
                f"exec {enter} env {env} "
                f'PATH={shlex.quote(bin_dir)}:"$PATH" "$@"\n'
            )
        os.chmod(path, 0o755)


BANNER = """\
netctl lab: {n} hosts on the underlay 10.200.0.0/24, etcd at 10.200.0.1:2379, an overlay agent
on each. This shell runs on the lab's etcd host (etcdctl works as is). Run a command on a
host with its name, e.g.:

  host1 netctl network create -d overlay my-multi-host-network
  host2 netctl apply -f my-containers.yaml
  host1 netctl network ls
  host2 netctl exec web -- ping -c1 10.0.0.2

Everything vanishes when this shell exits.
"""


def run_lab(hosts: int, command: Sequence[str], ttl: int = 15) -> int:
    """Build the lab, run `command` (or a shell) with host1..hostN on PATH, tear it down."""
    lab = Lab(hosts, ttl=ttl)
    try:
        lab.start()
        for host in lab.hosts:
            lab.start_agent(host)
        folder = os.path.join(lab.dir, "bin")
        write_wrappers(lab, folder)
        argv = list(command) or [os.environ.get("SHELL", "/bin/sh")]
        if not command:
            sys.stderr.write(BANNER.format(n=hosts))
        env = {**os.environ, "PATH": f"{folder}:{os.environ.get('PATH', '')}", "NETCTL_LAB": lab.dir,
               "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": f"{ETCD_ADDRESS}:{ETCD_PORT}"}
        time.sleep(0.2)  # let the agents take their leases
        # The command runs on the etcd sandbox (the lab's console), never on this machine's
        # own network: a stray `netctl apply` there lands in a throwaway namespace. Whatever
        # it leaves running in the lab's namespaces is killed by close().
        assert lab.etcd_host is not None
        return subprocess.call([*join_argv(lab.etcd_host.pid), *argv], env=env)
    finally:
        lab.close()
