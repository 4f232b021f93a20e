"""Fixtures shared by unit tests: a real etcd (Debian's etcd-server) on unix sockets in a
temporary folder, one per test module, and a client that starts each test from an empty
keyspace. No TCP port is opened anywhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.cluster.etcd import Etcd
from controller.cluster.server import EtcdServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    s = EtcdServer(str(tmp_path_factory.mktemp("etcd") / "data"))
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(server: EtcdServer) -> Iterator[Etcd]:
    with server.client() as c:
        c.delete("", prefix=True)  # every test starts from an empty keyspace
        yield c
