"""Run a real etcd (Debian's etcd-server) for tests, labs and benchmarks.

Two shapes, both safe on a shared machine: on unix sockets in a directory (no TCP port at
all: the unit tests), or on an address inside a sandbox's network namespace, entered through
`prefix` (e.g. `nsenter -t PID -n -m`): the multi-host lab. Never on this machine's own
interfaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence

from controller.cluster.etcd import Etcd, EtcdError
from controller.kernel.netns import CLONE_NEWNET, setns

ETCD = "etcd"


@contextlib.contextmanager
def in_netns_of(pid: int) -> Iterator[None]:
    """Run the block with this thread in the network namespace of process `pid` (sockets
    opened inside stay there): how the lab's own code reaches an etcd inside a sandbox."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def available() -> bool:
    return shutil.which(ETCD) is not None


class EtcdServer:
    """One single-member etcd. `client_url` is what our client dials."""

    def __init__(
        self,
        data_dir: str,
        *,
        listen: str | None = None,
        prefix: Sequence[str] = (),
        netns_pid: int | None = None,
        name: str = "netctl",
        tls: tuple[str, str, str] | None = None,
    ) -> None:
        """listen: `HOST:PORT` for TCP (inside the namespace `prefix` enters); None: unix
        sockets in `data_dir`'s parent (the peer socket too, so nothing listens on TCP).
        netns_pid: the process whose network namespace etcd listens in (the readiness check
        is made from there)."""
        self.data_dir = os.path.abspath(data_dir)
        self.prefix = list(prefix)
        self.netns_pid = netns_pid
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        base = os.path.dirname(self.data_dir)
        self.cwd = base
        if listen is None:
            # etcd wants unix://HOST:PORT: the "host:port" becomes a socket file in its cwd.
            # (No TLS here: etcd 3.4's JSON gateway cannot dial itself over unixs.)
            client, peer = "unix://etcd-client.sock:0", "unix://etcd-peer.sock:0"
            self.client_url = f"unix://{base}/etcd-client.sock:0"
        else:
            host = listen.rsplit(":", 1)[0]
            client, peer = f"{'https' if tls else 'http'}://{listen}", f"http://{host}:2380"
            self.client_url = client
        self.argv = [
            ETCD, "--name", name, "--data-dir", self.data_dir,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
            "--log-level", "error", "--logger", "zap",
        ]
        self.tls = tls  # (ca, cert, key): clients must present a certificate the CA signed
        if tls:
            ca, cert, key = tls
            self.argv += ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
                          "--client-cert-auth"]
        self.log_path = os.path.join(base, f"{name}.log")

    def start(self, timeout: float = 15.0) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, *self.argv], cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        inside = in_netns_of(self.netns_pid) if self.netns_pid else contextlib.nullcontext()
        with inside, self.client(timeout=0.5) as client:
            while True:
                try:
                    client.range("health-check")
                    return
                except EtcdError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"etcd did not start; see {self.log_path}") from None
                    time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop etcd (its data directory stays: `start()` brings the same store back)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self, timeout: float = 2.0) -> Etcd:
        context = None
        if self.tls:
            ca, cert, key = self.tls
            context = ssl.create_default_context(cafile=ca)
            context.load_cert_chain(cert, key)
        return Etcd([self.client_url], timeout=timeout, ssl_context=context)
