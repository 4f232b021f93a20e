"""SIGKILL at any point of an apply, then apply again: exactly the target, nothing leaked."""

from __future__ import annotations

import json
import time

import pytest

from tests.sandbox_host import NETCTL, SandboxHost

SEED = "examples/seed-tour.yaml"


def many(n: int) -> str:
    docs = [
        f"apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: c{i}}}\nspec: {{networks: [bridge]}}\n"
        for i in range(n)
    ]
    return "---\n".join(docs)


def addresses(host: SandboxHost, names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        info = json.loads(host.run(["ip", "-n", name, "-j", "addr", "show", "eth0"]).stdout)[0]
        out[name] = next(a["local"] for a in info["addr_info"] if a["family"] == "inet")
    return out


def assert_converged(host: SandboxHost, names: list[str]) -> None:
    assert host.netctl("plan").stdout.strip() == "no changes"
    veths = [ln for ln in host.run(["ip", "-br", "link"]).stdout.splitlines() if ln.startswith("veth")]
    assert len(veths) == len(names), "a veth leaked or is missing"
    listed = [line.split()[0] for line in host.run(["ip", "netns", "list"]).stdout.splitlines()]
    assert sorted(listed) == sorted(names)
    got = addresses(host, names)
    assert len(set(got.values())) == len(names), f"an address was handed out twice: {got}"


@pytest.mark.parametrize(
    "failpoint", ["action=1", "action=2", "action=7", "action=25", "action=60", "veth-created=3",
     "netns-file-created=4"]
)
def test_sigkill_at_an_exact_point_then_apply_converges(host: SandboxHost, failpoint: str) -> None:
    host.write("/tmp/many.yaml", many(12))
    names = [f"c{i}" for i in range(12)]
    crashed = host.run(
        ["env", f"NETCTL_FAILPOINTS={failpoint}", *NETCTL, "apply", "-f", "/tmp/many.yaml"],
        check=False,
    )
    assert crashed.returncode == -9
    first = host.netctl("apply", "-f", "/tmp/many.yaml")
    assert "Plan:" in first.stdout
    assert_converged(host, names)
    # Addresses were fixed before the crash and kept by the second apply: c0 is .2, c11 is .13.
    got = addresses(host, names)
    assert got["c0"] == "172.17.0.2" and got["c11"] == "172.17.0.13"


def test_sigkill_at_random_moments_of_apply_and_delete(host: SandboxHost) -> None:
    host.write("/tmp/many.yaml", many(40))
    names = [f"c{i}" for i in range(40)]
    for delay in (0.05, 0.2, 0.4):
        proc = host.popen([*NETCTL, "apply", "-f", "/tmp/many.yaml"])
        time.sleep(delay)
        proc.kill()
        proc.wait()
    host.netctl("apply", "-f", "/tmp/many.yaml")
    assert_converged(host, names)
    proc = host.popen([*NETCTL, "delete", "-f", "/tmp/many.yaml"])
    time.sleep(0.1)
    proc.kill()
    proc.wait()
    host.netctl("delete", "-f", "/tmp/many.yaml", "--ignore-not-found")
    assert host.run(["ip", "-br", "link"]).stdout.split()[0] == "lo"
    assert len(host.run(["ip", "-br", "link"]).stdout.splitlines()) == 1
    assert host.run(["ip", "netns", "list"]).stdout.strip() == ""


def test_second_writer_waits_then_fails_with_exit_3(host: SandboxHost) -> None:
    holder = host.popen(["python3", "-c", (
        "import fcntl, os, time; os.makedirs('/var/lib/netctl', exist_ok=True);"
        "fd = os.open('/var/lib/netctl/lock', os.O_RDWR | os.O_CREAT);"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.pwrite(fd, b'4242', 0); print('locked', flush=True);"
        "time.sleep(30)")], stdout=-1)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        started = time.monotonic()
        result = host.netctl("--lock-timeout", "0.5", "apply", "-f", SEED, check=False)
        assert result.returncode == 3
        assert "holds the lock" in result.stderr and "4242" in result.stderr
        assert time.monotonic() - started >= 0.5
        assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()
    # Once the lock is free, a waiting apply goes through.
    host.netctl("apply", "-f", SEED)
