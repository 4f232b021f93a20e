"""The pipeline's side of DNS: publish the records, make sure a server runs and has them.

After every converge the pipeline calls `sync(state_dir, target)`:

1. The records (controller.dns.records, built from the target just converged) are written
   to <state-dir>/dns/records.json with a new generation number, and a hosts(5) file for the
   host to <state-dir>/dns/hosts, atomically and only when they changed.
2. If some container uses the embedded DNS (or the host asked for a listener, `netctl dns
   listen`) and no server runs for this state directory (its lock is free), one is started,
   detached: `python -m controller.dns serve`.
3. The server is told to reload over its control socket and answers once it serves the new
   generation, so that when `netctl apply` or `network connect` returns, DNS already says so.

Nothing here imports dnspython or asyncio: the pipeline stays light.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from controller.desired import uses_embedded_dns
from controller.dns import records
from controller.errors import ServiceError
from controller.model import Kind, Resource, Target

log = structlog.get_logger("netctl.dns")

START_TIMEOUT = 10.0  # a first start imports Python, dnspython and pyroute2
RELOAD_TIMEOUT = 5.0
LOG_LIMIT = 1 << 20


class DnsUnavailable(ServiceError):
    """The server did not come up or did not answer in time."""


@dataclass(frozen=True)
class Paths:
    state_dir: str

    @property
    def dir(self) -> str:
        return os.path.join(self.state_dir, "dns")

    def _file(self, name: str) -> str:
        return os.path.join(self.state_dir, "dns", name)

    @property
    def records(self) -> str:
        """The published table."""
        return self._file("records.json")

    @property
    def hosts(self) -> str:
        """Hosts(5) lines for the host."""
        return self._file("hosts")

    @property
    def listen(self) -> str:
        """Host addresses to answer on (`netctl dns listen`)."""
        return self._file("listen")

    @property
    def lock(self) -> str:
        """Held by the server for its whole life."""
        return self._file("lock")

    @property
    def pid(self) -> str:
        """The supervisor's pid."""
        return self._file("pid")

    @property
    def control(self) -> str:
        """Reload and status requests: a socket file, or an abstract socket (a name in the
        network namespace) when the path is too long for a unix socket address."""
        path = self._file("control.sock")
        if len(os.fsencode(path)) < 100:
            return path
        return "\0netctl-dns-" + hashlib.sha256(os.fsencode(self.state_dir)).hexdigest()[:24]

    @property
    def log(self) -> str:
        """The server's output."""
        return self._file("log")


# --------------------------------------------------------------------------- the pipeline's call


def sync(state_dir: str, target: Target, remote: Iterable[tuple[str, str, str]] = ()) -> None:
    """Publish the DNS view of `target` and make the server serve it (never raises: DNS
    trouble is logged, the apply itself has succeeded). `remote`: (network, container, ip)
    of endpoints on other hosts of the cluster (see `records.build`)."""
    paths = Paths(state_dir)
    needed = _needed(paths, target)
    if not needed and not os.path.exists(paths.records):
        return  # DNS was never used here: no files, no process, no cost
    try:
        generation, changed = publish(paths, records.build(target, remote))
        if not needed and not alive(paths):
            return
        if changed or not alive(paths):
            wait_for(paths, generation, start=needed)
    except (OSError, DnsUnavailable) as exc:
        log.warning("embedded DNS is not up to date", error=str(exc), log=paths.log)


SERVICE_KEY = "service:dns"


def service(state_dir: str, target: Target) -> list[Resource]:
    """The server as a resource of the target while any container (or `dns listen`) needs it:
    a dead server is then drift, shown by `netctl plan` and repaired by the controller."""
    return [_service_resource()] if _needed(Paths(state_dir), target) else []


def _needed(paths: Paths, target: Target) -> bool:
    """A server must run: a container uses the embedded DNS, or `dns listen` is set."""
    try:
        return any(uses_embedded_dns(c, target) for c in target.containers) or bool(
            listen_addresses(paths)
        )
    except ValueError as exc:
        log.warning("bad dns listen setting", error=str(exc))
        return True


def observe_service(state_dir: str) -> list[Resource]:
    """The server as the kernel shows it: running (it holds its lock) or not."""
    return [_service_resource()] if alive(Paths(state_dir)) else []


def _service_resource() -> Resource:
    return Resource(Kind.SERVICE, SERVICE_KEY, {"name": "embedded DNS server (127.0.0.11)"})


def prestart(state_dir: str, target: Target) -> None:
    """Start the server now if `target` will need one and none runs, without waiting: its
    interpreter start-up then overlaps the kernel work, and `sync` finds it (nearly) ready."""
    paths = Paths(state_dir)
    try:
        if any(uses_embedded_dns(c, target) for c in target.containers) and not alive(paths):
            spawn(paths)
    except OSError as exc:
        log.warning("could not start the DNS server", error=str(exc), log=paths.log)


def publish(paths: Paths, table: records.Records) -> tuple[int, bool]:
    """Write records.json and hosts if their content changed: (generation, changed)."""
    os.makedirs(paths.dir, exist_ok=True)
    old = read_text(paths.records)
    generation = _generation(old)
    text = records.to_json(table, generation)
    if old is not None and records.same_records(old, text):
        return generation, False
    generation += 1
    _write(paths.records, records.to_json(table, generation))
    _write(paths.hosts, records.hosts_file(table))
    return generation, True


def wait_for(paths: Paths, generation: int, start: bool = True) -> dict[str, Any]:
    """Until the server serves `generation`: start it if none runs, tell it to reload."""
    deadline = time.monotonic() + START_TIMEOUT
    grace = time.monotonic() + 2.0 if _recently_spawned(paths) else 0.0
    spawned = False
    while True:
        try:
            left = max(0.1, min(RELOAD_TIMEOUT, deadline - time.monotonic()))
            status = request(paths, "reload", timeout=left)
            if int(status.get("generation", 0)) >= generation:
                return status
        except (FileNotFoundError, ConnectionRefusedError):
            # None runs, or one is starting (prestart): it holds the lock before it listens.
            if start and not spawned and not alive(paths) and time.monotonic() > grace:
                spawn(paths)
                spawned = True
        except (TimeoutError, OSError, ValueError) as exc:
            raise DnsUnavailable(f"the DNS server did not answer: {exc}") from exc
        if time.monotonic() >= deadline:
            raise DnsUnavailable(f"no DNS server serves generation {generation} after {START_TIMEOUT:g}s")
        time.sleep(0.02)


# --------------------------------------------------------------------------- the server process


def alive(paths: Paths) -> bool:
    """A server holds the lock of this state directory for its whole life."""
    try:
        fd = os.open(paths.lock, os.O_RDWR)  # no lock file: no server (and none is made here)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def spawn(paths: Paths) -> None:
    """Start `python -m controller.dns serve` detached: its own session, no terminal, no
    pipes of ours (a caller reading our output must not wait for it), output to dns/log."""
    os.makedirs(paths.dir, exist_ok=True)
    with contextlib.suppress(OSError):
        if os.path.getsize(paths.log) > LOG_LIMIT:
            os.replace(paths.log, paths.log + ".1")
    _spawned_at[paths.state_dir] = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCTL_FAILPOINT")}
    with open(paths.log, "ab") as out:
        _spawned[paths.state_dir] = subprocess.Popen(
            [sys.executable, "-m", "controller.dns", "--state-dir", paths.state_dir, "serve"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True, env=env, cwd="/",
        )


def _recently_spawned(paths: Paths) -> bool:
    """A server spawned by this process less than a few seconds ago may not hold the lock
    yet: give it a moment rather than start a second one (which would exit at once). One
    that has already ended (killed) gets no such moment: it is restarted at once."""
    process = _spawned.get(paths.state_dir)
    if process is not None and process.poll() is not None:
        return False
    return time.monotonic() - _spawned_at.get(paths.state_dir, -1e9) < 5.0


_spawned_at: dict[str, float] = {}
_spawned: dict[str, subprocess.Popen[bytes]] = {}


def request(paths: Paths, op: str, timeout: float = RELOAD_TIMEOUT, **args: Any) -> dict[str, Any]:
    """One request over the control socket: a JSON line out, a JSON line back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(paths.control)
        sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the DNS server closed the control connection")
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


# --------------------------------------------------------------------------- settings


def listen_addresses(paths: Paths) -> list[tuple[str, int]]:
    """Host addresses where the server answers the host's own questions (`netctl dns listen`)."""
    text = read_text(paths.listen) or ""
    out = []
    for line in text.split():
        out.append(parse_listen(line))
    return out


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1`, `127.0.0.1:5353`, `[::1]:5353` -> (address, port); port 53 by default."""
    import ipaddress

    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    return host, port


def set_listen(paths: Paths, addresses: list[str]) -> None:
    for a in addresses:
        parse_listen(a)  # validate before writing anything
    os.makedirs(paths.dir, exist_ok=True)
    _write(paths.listen, "".join(f"{a}\n" for a in addresses))


# --------------------------------------------------------------------------- files


def read_text(path: str) -> str | None:
    """A file's text, or None when it does not exist (yet)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    """Atomically: the server never reads half a file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _generation(text: str | None) -> int:
    if not text:
        return 0
    try:
        return int(json.loads(text).get("generation", 0))
    except (ValueError, AttributeError):
        return 0
