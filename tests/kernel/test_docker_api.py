"""The controller's Docker Engine API, driven by the real docker SDK over its unix socket.

The controller runs inside a sandbox host with `--api-socket` on the shared /tmp, so the
test process itself is the Docker client; what the API does is checked in the kernel
(bridges, addresses inside the container) and against `netctl network inspect`.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.types import IPAMConfig, IPAMPool

from tests.kernel.test_controller import ControllerProcess, eventually
from tests.manifests import container, manifest
from tests.sandbox_host import SandboxHost


@pytest.fixture
def api(host: SandboxHost, tmp_path: Path) -> Iterator[tuple[docker.DockerClient, Path]]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    # applied from a shell, not declared in the folder (the folder's objects are the folder's)
    host.write("/tmp/web.yaml", manifest(container("web")))
    host.netctl("apply", "-f", "/tmp/web.yaml")
    (folder / "fixed.yaml").write_text(manifest(container("fixed")))
    sock = tmp_path / "docker.sock"
    ctl = ControllerProcess(host, folder, tmp_path / "controller.log", "--api-socket", str(sock))
    try:
        eventually(lambda: sock.exists() and ctl.reconciled(), timeout=20)
        client = docker.DockerClient(base_url=f"unix://{sock}", version="auto", timeout=30)
        yield client, sock
        client.close()
    finally:
        ctl.stop()


def _error(call: object, *args: object, **kwargs: object) -> docker.errors.APIError:
    with pytest.raises(docker.errors.APIError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_the_docker_sdk_manages_netctls_networks(api: tuple[docker.DockerClient, Path],
                                                  host: SandboxHost) -> None:
    client, sock = api
    assert client.ping() is True
    assert client.version()["ApiVersion"] and oct(stat.S_IMODE(os.stat(sock).st_mode)) == "0o660"
    names = {n.name for n in client.networks.list()}
    assert {"bridge", "host", "none"} <= names
    assert [n.name for n in client.networks.list(names=["bridge"])] == ["bridge"]

    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.77.0.0/24", gateway="10.77.0.1")])
    front = client.networks.create("front", driver="bridge", ipam=ipam, labels={"env": "test"})
    assert len(front.id) == 64
    shown = json.loads(host.netctl("-o", "json", "network", "inspect", "front").stdout)[0]
    assert shown["Id"] == front.id and shown["Labels"] == {"env": "test"}
    assert front.attrs["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1"}]
    host.run(["ip", "link", "show", f"br-{front.id[:12]}"])  # the bridge is in the kernel
    assert client.networks.get(front.id[:10]).name == "front"  # an ID prefix, as Docker takes it
    assert [n.name for n in client.networks.list(filters={"label": "env=test"})] == ["front"]

    assert _error(client.networks.create, "front").status_code == 409
    wrong = IPAMConfig(pool_configs=[IPAMPool(subnet="10.1.1.1/33")])
    bad = _error(client.networks.create, "bad", ipam=wrong)
    assert bad.status_code == 400 and "10.1.1.1/33" in str(bad.explanation)

    # connect a container netctl runs (the API cannot start containers): its address, its alias
    front.connect("web", ipv4_address="10.77.0.20", aliases=["api"])
    assert "10.77.0.20/24" in host.exec("web", "ip -4 -o addr").stdout
    front.reload()
    (endpoint,) = front.attrs["Containers"].values()
    assert endpoint["Name"] == "web" and endpoint["IPv4Address"] == "10.77.0.20/24"
    assert _error(front.connect, "web").status_code == 403  # already connected
    owned = _error(front.connect, "fixed")  # the folder's: its next reconcile would undo it
    assert owned.status_code == 403 and "declared in the controller's folder" in str(owned.explanation)
    missing = _error(front.connect, "nosuch")
    assert missing.status_code == 404 and "No such container: nosuch" in str(missing.explanation)
    assert _error(front.remove).status_code == 403  # in use: active endpoints
    front.disconnect("web")
    assert "10.77.0.20" not in host.exec("web", "ip -4 -o addr").stdout
    front.remove()
    assert host.run(["ip", "link", "show", f"br-{front.id[:12]}"], check=False).returncode != 0
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("front")
    assert _error(client.api.remove_network, "bridge").status_code == 403  # pre-defined

    for name in ("a", "b"):
        client.networks.create(name, labels={"env": "test"})
    client.networks.create("kept")
    assert sorted(client.networks.prune(filters={"label": "env=test"})["NetworksDeleted"]) == ["a", "b"]
    assert "kept" in {n.name for n in client.networks.list()}
    listed = host.netctl("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "kept" in listed and "a" not in listed


def _raw(sock: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(str(sock))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


MALFORMED = [
    b"\x00\xff garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /networks HTTP/9.9\r\n\r\n",
    b"POST /networks/create HTTP/1.1\r\nContent-Length: 12\r\n\r\n{not json!!}",
    b"POST /networks/create HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{}",
    b"POST /networks/create HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /networks/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b'POST /networks/create HTTP/1.1\r\nContent-Length: 14\r\n\r\n{"Name": 1234}',
    b'POST /networks/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]',
    b'POST /networks/x/connect HTTP/1.1\r\nContent-Length: 17\r\n\r\n{"Container": []}',
    b"GET /networks?filters=%7Bnope HTTP/1.1\r\n\r\n",
    b"DELETE /v1.45/nosuch/path HTTP/1.1\r\n\r\n",
    b"POST /networks/create HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"Name\"",  # cut short
]


def test_malformed_requests_and_many_clients_do_not_stop_it(api: tuple[docker.DockerClient, Path]) -> None:
    client, sock = api
    statuses = set()
    for i in range(1000):
        reply = _raw(sock, MALFORMED[i % len(MALFORMED)])
        status = reply.split(b" ", 2)[1] if reply.startswith(b"HTTP/") else b"none"
        statuses.add(status)
        assert status in (b"400", b"404", b"505", b"none"), reply[:200]
        if status != b"none" and b"\r\n\r\n" in reply:
            assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["message"]
    assert b"400" in statuses and b"404" in statuses

    errors: list[BaseException] = []

    def one_client(i: int) -> None:
        try:
            c = docker.DockerClient(base_url=f"unix://{sock}", version="1.45", timeout=60)
            assert "bridge" in {n.name for n in c.networks.list()}
            if i % 10 == 0:
                c.networks.create(f"n{i}").remove()
            c.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert client.ping() is True
    assert {n.name for n in client.networks.list()} == {"bridge", "host", "none"}
