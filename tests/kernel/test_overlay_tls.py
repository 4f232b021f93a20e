"""--cluster-store-opt kv.cacertfile/kv.certfile/kv.keyfile reach etcd: an etcd requiring client
certificates, on 127.0.0.1 inside a sandbox's own network namespace."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from controller.cluster import config, server
from controller.cluster.etcd import Etcd, EtcdUnavailable
from controller.cluster.lab import spawn_sandbox
from controller.cluster.server import EtcdServer, in_netns_of
from controller.kernel.sandbox import join_argv

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not server.available(), reason="etcd is not installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    days = ["-days", "2"]
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-subj", "/CN=netctl-test-ca", *days, cwd=folder)
    # etcd's own gateway dials etcd with the server certificate: it must be a client one too.
    for name, usage in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        (folder / f"{name}.ext").write_text(
            f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-extfile", f"{name}.ext", *days, cwd=folder)


def test_tls_options_reach_etcd(tmp_path: Path) -> None:
    _certificates(tmp_path)
    pid = spawn_sandbox("tls")
    ca = str(tmp_path / "ca.pem")
    etcd = EtcdServer(str(tmp_path / "etcd" / "data"), listen="127.0.0.1:2379",
                      prefix=join_argv(pid), netns_pid=pid,
                      tls=(ca, str(tmp_path / "server.pem"), str(tmp_path / "server.key")))
    try:
        etcd.start()
        opts = [f"kv.cacertfile={ca}", f"kv.certfile={tmp_path / 'client.pem'}",
                f"kv.keyfile={tmp_path / 'client.key'}"]
        cfg = config.parse("etcd://127.0.0.1:2379", "192.0.2.1", opts)
        assert cfg.endpoints == ("https://127.0.0.1:2379",)
        anonymous = config.parse("etcd://127.0.0.1:2379", "192.0.2.1", [f"kv.cacertfile={ca}"])
        with in_netns_of(pid):
            with Etcd(cfg.endpoints, ssl_context=cfg.ssl_context()) as c:
                c.put("/tls", "yes")
                assert c.get("/tls") is not None
            with Etcd(anonymous.endpoints, ssl_context=anonymous.ssl_context()) as c, \
                    pytest.raises(EtcdUnavailable):
                c.get("/tls")  # no client certificate: refused
            with Etcd(["http://127.0.0.1:2379"]) as c, pytest.raises(EtcdUnavailable):
                c.get("/tls")  # plain HTTP: refused
    finally:
        etcd.stop(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
