"""Every subcommand given something wrong: its documented exit code, `error: ...`, never a
traceback (in one sandbox host, so that nothing can reach the machine's own state)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_host import SandboxHost

DEAD_ETCD = ["--cluster-store", "etcd://127.0.0.1:1", "--advertise-address", "lo"]  # nothing listens

CASES = [
    # (arguments, exit code)
    (["apply", "-f", "/tmp/nosuch.yaml"], 2),
    (["apply", "-f", "/tmp/bad.yaml"], 2),
    (["plan", "-f", "/tmp/bad.yaml"], 2),
    (["diff", "-f", "/tmp/nosuch.yaml"], 2),
    (["delete", "-f", "/tmp/nosuch.yaml"], 2),
    (["validate", "-f", "/tmp/bad.yaml"], 2),
    (["network", "inspect", "nosuch"], 2),
    (["network", "create", "-d", "macvlan", "m1"], 2),
    (["network", "create", "--subnet", "10.1.0.0/33", "n1"], 2),
    (["network", "rm", "nosuch"], 2),
    (["network", "rm", "bridge"], 2),
    (["network", "connect", "nosuch", "nobody"], 2),
    (["network", "disconnect", "bridge", "nobody"], 2),
    (["container", "inspect", "nosuch"], 2),
    (["exec", "nosuch", "--", "true"], 2),
    (["status", "-o", "json", "nosuch"], 2),
    (["controller", "--manifests", "/tmp/m", "--metrics-address", "x"], 2),
    (["dns", "listen", "not-an-address"], 2),
    (["--config", "/tmp/nosuch.json", "plan"], 2),
    (["--lock-timeout", "x", "plan"], 2),
    ([*DEAD_ETCD, "overlay", "peers"], 1),
    ([*DEAD_ETCD, "overlay", "preflight"], 1),
    ([*DEAD_ETCD, "apply", "-f", "/tmp/overlay.yaml"], 1),
    ([*DEAD_ETCD, "network", "ls"], 0),  # listing degrades to what this host knows
]


@pytest.fixture(scope="module")
def shared() -> Iterator[SandboxHost]:
    h = SandboxHost()
    try:
        h.write("/tmp/bad.yaml", "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: [x]}\n")
        h.write("/tmp/overlay.yaml", "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: ov}\n"
                                     "spec: {driver: overlay}\n")
        yield h
    finally:
        h.close()


@pytest.mark.parametrize(("args", "code"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_arguments_exit_with_their_code_and_one_message_style(
    shared: SandboxHost, args: list[str], code: int,
) -> None:
    result = shared.netctl(*args, check=False, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    if "preflight" in args:  # a report: the failed check is a row of it
        assert "cluster-store" in result.stdout and "FAIL" in result.stdout, result.stdout
    elif code:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert any(ln.startswith(("error: ", "usage: ")) for ln in lines), result.stderr
