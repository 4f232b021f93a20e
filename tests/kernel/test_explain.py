"""`netctl explain` against real packets: the firewall test topology applied in a sandbox,
every ordered pair, the way out and the published ports tried with real TCP, and explain's
verdict for each compared with what happened. One backend: explain reads the applied state,
which is the same for both (test_firewall checks that both backends enforce it)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest

from tests.kernel.test_firewall import A_IP, ADDRESS, MATRIX, OUT_IP, PORT
from tests.sandbox_host import SandboxHost, probe, serve, wire

CONTAINERS = ["f1", "f2", "b1", "dual", "q1", "q2", "q3", "v1", "v2", "web"]

# explain's engine over the applied state, for many questions in one process (the CLI is
# one process per question; it is tried below too)
BATCH = """
import json, os, sys
from controller.documents import stored_target
from controller.explain import explain
from controller.kernel import rtdump
from controller.store import Store
target = stored_target(Store(os.environ["NETCTL_STATE_DIR"]))
mine = [a.address for a in rtdump.dump(None, routes=False).addresses]
print(json.dumps({f"{s} {d}": explain(target, s, d, mine).reachable for s, d in json.load(sys.stdin)}))
"""


@contextlib.contextmanager
def matrix_lab(outside: SandboxHost, firewall: str, serving: Sequence[str]) -> Iterator[SandboxHost]:
    """The firewall test topology on a host wired to `outside`, TCP servers on PORT."""
    host = SandboxHost(firewall=firewall)
    servers: list[subprocess.Popen[str]] = []
    try:
        wire(host, outside, f"{A_IP}/24", f"{OUT_IP}/24")
        host.write("/tmp/matrix.yaml", MATRIX)
        host.netctl("apply", "-f", "/tmp/matrix.yaml")
        servers = [serve(host, PORT, serving), serve(outside, PORT, ["-"])]
        yield host
    finally:
        for s in servers:
            s.kill()
            s.wait()
        host.close()


@pytest.fixture
def lab(outside: SandboxHost) -> Iterator[tuple[SandboxHost, SandboxHost]]:
    with matrix_lab(outside, "nftables", CONTAINERS) as host:
        yield host, outside


def questions() -> list[tuple[str, str, str, int, str]]:
    """(explain's SRC, explain's DST, probe's source, address, port) for TCP."""
    out = []
    for src in [*CONTAINERS, "host", OUT_IP]:
        where = "-" if src in ("host", OUT_IP) else src
        for dst, ip in ADDRESS.items():
            if dst.split("@")[0] != src:
                out.append((src, f"{ip}:{PORT}", where, ip, PORT))
        if src != OUT_IP:
            out.append((src, f"{OUT_IP}:{PORT}", where, OUT_IP, PORT))  # leaving the host
    for port in (8080, 9000, 9090, 8000):
        out.append((OUT_IP, f"{A_IP}:{port}", "-", A_IP, port))
    for port in (8080, 9090):
        out.append(("host", f"127.0.0.1:{port}", "-", "127.0.0.1", port))
    for src in ("b1", "web", "f1", "v1"):
        out.append((src, f"{A_IP}:8080", src, A_IP, 8080))
    return out


def test_explain_agrees_with_real_packets(lab: tuple[SandboxHost, SandboxHost]) -> None:
    host, outside = lab
    asked = questions()
    verdicts = json.loads(host.run([sys.executable, "-c", BATCH],
                                   input=json.dumps([(s, d) for s, d, *_ in asked])).stdout)
    inside = [(w, ip, port) for s, _, w, ip, port in asked if s != OUT_IP]
    from_outside = [(w, ip, port) for s, _, w, ip, port in asked if s == OUT_IP]
    got = probe(host, "tcp", inside)
    got.update({f"out{k}": v for k, v in probe(outside, "tcp", from_outside).items()})
    wrong = []
    for src, dst, where, ip, port in asked:
        real = got[f"{'out' if src == OUT_IP else ''}{where}>{ip}:{port}"] is not None
        if verdicts[f"{src} {dst}"] != real:
            wrong.append(f"{src} -> {dst}: explain says {verdicts[f'{src} {dst}']}, packets say {real}")
    assert len(asked) > 100 and not wrong, "\n".join(wrong)
    _the_cli_answers_with_reasons_exit_codes_and_drift(host, outside)


def _the_cli_answers_with_reasons_exit_codes_and_drift(host: SandboxHost, outside: SandboxHost) -> None:
    blocked = host.netctl("explain", "f1", f"10.10.2.10:{PORT}", check=False)
    assert blocked.returncode == 1
    assert "isolated: front and back are different bridge networks" in blocked.stdout
    ok = host.netctl("-o", "json", "explain", "q1", "q2", check=False)
    verdict = json.loads(ok.stdout)
    assert ok.returncode == 1 and verdict["resolved"] == "10.10.3.11"
    assert any("enable_icc is false on quiet" in r for r in verdict["reasons"])
    bad = host.netctl("explain", "f1", "nosuch:80", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    # a DNAT deleted by hand, a default route deleted in a container: the verdict is the
    # kernel's, the packets agree, and an apply brings both back
    host.run(["nft", "delete element inet netctl dnat4any { tcp . 8080 }"])
    host.exec("f1", "ip route del default")
    drift = host.netctl("explain", OUT_IP, f"{A_IP}:8080", check=False)
    assert drift.returncode == 1, drift.stdout
    assert "the DNAT of 8080/tcp is missing in the kernel" in drift.stdout
    assert "the kernel differs from what was applied" in drift.stdout and "firewall" in drift.stdout
    routeless = host.netctl("explain", "f1", f"{OUT_IP}:{PORT}", check=False)
    assert routeless.returncode == 1 and "f1's default route is missing in the kernel" in routeless.stdout
    assert probe(outside, "tcp", [("-", A_IP, 8080)])[f"->{A_IP}:8080"] is None
    assert probe(host, "tcp", [("f1", OUT_IP, PORT)])[f"f1>{OUT_IP}:{PORT}"] is None
    host.netctl("apply", "-f", "/tmp/matrix.yaml")
    assert host.netctl("explain", OUT_IP, f"{A_IP}:8080", check=False).returncode == 0
    assert host.netctl("explain", "f1", f"{OUT_IP}:{PORT}", check=False).returncode == 0
    assert probe(outside, "tcp", [("-", A_IP, 8080)])[f"->{A_IP}:8080"] is not None
    assert probe(host, "tcp", [("f1", OUT_IP, PORT)])[f"f1>{OUT_IP}:{PORT}"] is not None


def test_a_foreign_drop_in_forward_decides_first_and_explain_says_which(outside: SandboxHost) -> None:
    """iptables backend: rules above netctl's FORWARD jump, and the user's NETCTL-USER chain."""
    with matrix_lab(outside, "iptables", ["f1", "f2", "web"]) as host:
        host.run(["iptables", "-I", "FORWARD", "-s", "10.10.1.10", "-j", "DROP"])
        dropped = host.netctl("explain", "f1", f"{OUT_IP}:{PORT}", check=False)
        assert dropped.returncode == 1, dropped.stdout
        assert "a rule netctl does not own drops it first: FORWARD, rule 1 (-s 10.10.1.10/32 -j DROP)" \
            in dropped.stdout
        assert host.netctl("explain", "f2", f"{OUT_IP}:{PORT}", check=False).returncode == 0
        got = probe(host, "tcp", [("f1", OUT_IP, PORT), ("f2", OUT_IP, PORT)])
        assert got[f"f1>{OUT_IP}:{PORT}"] is None and got[f"f2>{OUT_IP}:{PORT}"] is not None
        # the user's chain (Docker's DOCKER-USER): a published port closed from outside
        host.run(["iptables", "-A", "NETCTL-USER", "-p", "tcp", "-d", "10.10.1.30", "--dport", str(PORT),
                  "-j", "DROP"])
        closed = host.netctl("explain", OUT_IP, f"{A_IP}:8080", check=False)
        assert closed.returncode == 1 and "NETCTL-USER, rule 1" in closed.stdout, closed.stdout
        assert probe(outside, "tcp", [("-", A_IP, 8080)])[f"->{A_IP}:8080"] is None
        assert host.netctl("plan").stdout.strip() == "no changes"  # the user's rules are not drift
