"""The embedded DNS server against the real kernel, inside sandbox hosts.

Every sandbox gets an upstream DNS server of its own (benchmarks/dns_upstream.py on a veth
in the sandbox host, 198.18.0.53) and a host resolv.conf bind-mounted over /etc/resolv.conf in
the sandbox's mount namespace only; 198.18.0.99 behind the same veth is a dead upstream
(packets to it vanish). No packet leaves the sandboxes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.manifests import container, manifest, network
from tests.sandbox_host import SandboxHost

UPSTREAM = "198.18.0.53"
DEAD = "198.18.0.99"
PYTHON = sys.executable

TOPOLOGY = manifest(
    network("app", "10.89.1.0/24"),
    network("priv", "10.89.2.0/24"),
    network("vaultnet", "10.89.3.0/24", internal=True),
    container("web", {"name": "app", "ipv4Address": "10.89.1.10", "aliases": ["www", "pool"]},
              hostname="webhost", extraHosts=["mirror.local:192.0.2.7"]),
    container("db", {"name": "app", "ipv4Address": "10.89.1.11", "aliases": ["pool"]}, ("priv", "10.89.2.11"),
              links=["web:frontend"]),
    container("secret", ("priv", "10.89.2.12")),
    container("vault", "vaultnet"),
    container("deadup", "app", dns=[DEAD]),
    container("fallback", "app", dns=[DEAD, UPSTREAM]),
    container("legacy", "bridge"),
    network("dual", "10.89.4.0/24", "fd00:89::/64", enableIPv6=True),
    container("six1", {"name": "dual", "ipv4Address": "10.89.4.10", "ipv6Address": "fd00:89::10"}),
    container("six2", {"name": "dual", "ipv4Address": "10.89.4.11", "ipv6Address": "fd00:89::11"}),
)


def prepare(host: SandboxHost) -> None:
    """An upstream on a dummy interface and a host resolv.conf pointing at it (plus a
    loopback resolver that a default-bridge container must not get)."""
    # A veth pair whose far end has no address: what is sent to DEAD vanishes there, without
    # an ICMP error (the permanent neighbour entry spares the ARP timeout).
    host.run(f"ip link add up0 type veth peer name up0p && ip link set up0p up && "
             f"ip addr add {UPSTREAM}/24 dev up0 && ip link set up0 up && "
             f"ip neigh add {DEAD} lladdr 02:00:00:00:00:99 dev up0 nud permanent")
    host.write("/run/netctl/host-resolv.conf",
               f"nameserver 127.0.0.53\nnameserver {UPSTREAM}\nsearch corp.test\n"
               "options timeout:1 attempts:2\n")
    host.run("mount --bind /run/netctl/host-resolv.conf /etc/resolv.conf")
    proc = host.popen([PYTHON, "benchmarks/dns_upstream.py", "--listen", UPSTREAM,
                       "--log", "/run/netctl/upstream.log", "--seconds", "600"],
                      stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    host.write("/run/netctl/topology.yaml", TOPOLOGY)
    host.netctl("apply", "-f", "/run/netctl/topology.yaml")


def dig(host: SandboxHost, container: str, args: str, check: bool = True) -> str:
    return host.exec(container, f"dig +tries=1 +time=5 {args}", check=check).stdout


def short(host: SandboxHost, container: str, args: str) -> list[str]:
    return dig(host, container, f"+short {args}").split()


def status_of(out: str) -> str:
    m = re.search(r"status: (\w+)", out)
    return m.group(1) if m else "no reply"


def upstream_log(host: SandboxHost) -> str:
    return host.run("cat /run/netctl/upstream.log || true").stdout


def dns_status(host: SandboxHost) -> dict[str, object]:
    out: dict[str, object] = json.loads(host.netctl("-o", "json", "dns", "status").stdout)
    return out


@pytest.fixture(scope="module")
def shared() -> Iterator[SandboxHost]:
    """One sandbox for the tests that only ask questions."""
    h = SandboxHost()
    try:
        prepare(h)
        yield h
    finally:
        h.close()


@pytest.fixture
def fresh() -> Iterator[SandboxHost]:
    h = SandboxHost()
    try:
        prepare(h)
        yield h
    finally:
        h.close()


# --------------------------------------------------------------------------- discovery


def test_names_aliases_hostnames_and_network_suffix_through_getent(shared: SandboxHost) -> None:
    for name in ("db", "pool.app", "db.app", "DB"):
        assert "10.89.1.11" in shared.exec("web", f"getent hosts {name}").stdout, name
    for name in ("www", "webhost", "web.app", "frontend"):
        assert shared.exec("db", f"getent hosts {name}").stdout.split()[0] == "10.89.1.10", name
    short_id = json.loads(shared.netctl("-o", "json", "container", "inspect", "web").stdout)[0]["Id"][:12]
    assert short(shared, "db", short_id) == ["10.89.1.10"]
    # extraHosts land in the hosts file, on any network.
    assert "192.0.2.7" in shared.exec("web", "getent hosts mirror.local").stdout


def test_tcp_and_ipv6(shared: SandboxHost) -> None:
    assert short(shared, "web", "+tcp db") == ["10.89.1.11"]
    assert short(shared, "six1", "AAAA six2") == ["fd00:89::11"]
    assert short(shared, "six1", "+tcp AAAA six2.dual") == ["fd00:89::11"]
    assert short(shared, "six1", "-x fd00:89::11") == ["six2.dual."]
    assert dig(shared, "web", "AAAA db").count("ANSWER: 0") == 1  # NODATA: db has no IPv6
    assert status_of(dig(shared, "web", "AAAA db")) == "NOERROR"
    both = shared.exec("six1", "getent ahosts six2").stdout
    assert "fd00:89::11" in both and "10.89.4.11" in both


def test_round_robin_over_an_alias_shared_by_two_containers(shared: SandboxHost) -> None:
    orders = [tuple(short(shared, "web", "+nocookie pool")) for _ in range(4)]
    assert {frozenset(o) for o in orders} == {frozenset({"10.89.1.10", "10.89.1.11"})}
    assert len({o[0] for o in orders}) == 2, orders  # the first answer changes


def test_ptr_for_shared_networks(shared: SandboxHost) -> None:
    assert short(shared, "web", "-x 10.89.1.11") == ["db.app."]
    assert status_of(dig(shared, "web", "-x 10.89.2.12")) == "NXDOMAIN"  # secret: not on app


def test_names_the_asker_cannot_see_are_forwarded_as_docker_does(shared: SandboxHost) -> None:
    assert short(shared, "db", "secret") == ["10.89.2.12"]  # db shares priv with it
    # web does not: the name is not answered locally but asked upstream (which does not
    # know it), so a corporate host of that name would still resolve.
    assert status_of(dig(shared, "web", "secret")) == "NXDOMAIN"
    assert status_of(dig(shared, "web", "secret.priv")) == "NXDOMAIN"
    assert shared.exec("web", "getent hosts secret", check=False).returncode == 2
    log = upstream_log(shared)
    assert re.search(r"^udp secret A$", log, re.M) and re.search(r"^udp secret\.priv A$", log, re.M), log
    # Other types of a visible name go upstream too (Docker answers A, AAAA and PTR only).
    dig(shared, "web", "TXT db")
    assert re.search(r"^udp db TXT$", upstream_log(shared), re.M)
    # Answers are not authoritative (Docker's AA is clear).
    assert " aa" not in dig(shared, "web", "db").split("flags:")[1].split(";")[0]


# --------------------------------------------------------------------------- resolv.conf


def test_resolv_conf_shapes(shared: SandboxHost) -> None:
    # Docker's file: search, nameserver, options (the host's, with ndots:0 merged), no comment.
    assert shared.exec("web", "cat /etc/resolv.conf").stdout == (
        "search corp.test\nnameserver 127.0.0.11\noptions timeout:1 attempts:2 ndots:0\n"
    )
    legacy = shared.exec("legacy", "cat /etc/resolv.conf").stdout
    assert f"nameserver {UPSTREAM}" in legacy
    assert "127.0.0.53" not in legacy and "127.0.0.11" not in legacy  # loopback filtered (Docker)


def test_default_bridge_container_has_no_embedded_server(shared: SandboxHost) -> None:
    out = dig(shared, "legacy", "@127.0.0.11 web", check=False)
    assert "connection refused" in out or "timed out" in out or "no servers" in out
    # ... and resolves through the host's resolvers: the upstream answers.
    assert short(shared, "legacy", "outside.example.test") == ["198.51.100.7"]


# --------------------------------------------------------------------------- forwarding


def test_forwarding_to_the_hosts_upstream(shared: SandboxHost) -> None:
    assert short(shared, "web", "fwd1.example.test") == ["198.51.100.7"]
    assert "198.51.100.7" in shared.exec("web", "getent ahostsv4 fwd2.example.test").stdout
    assert status_of(dig(shared, "web", "nx.example.test")) == "NXDOMAIN"
    log = upstream_log(shared)
    assert "udp fwd1.example.test A" in log and "udp fwd2.example.test" in log


def test_tcp_fallback_for_a_large_answer(shared: SandboxHost) -> None:
    # No EDNS: the client takes 512 bytes; 60 records need TCP, from us and from upstream.
    out = short(shared, "web", "+noedns +nocookie big.tcp1.example.test")
    assert len(out) == 60
    log = upstream_log(shared)
    assert "udp big.tcp1.example.test A" in log and "tcp big.tcp1.example.test A" in log


def test_dead_upstream_gives_servfail_in_bounded_time(shared: SandboxHost) -> None:
    started = time.monotonic()
    out = dig(shared, "deadup", "dead1.example.test")
    assert status_of(out) == "SERVFAIL"
    assert time.monotonic() - started < 4.0  # about 2.5 s, plus netctl exec


def test_second_upstream_is_tried_well_before_the_clients_timeout(shared: SandboxHost) -> None:
    started = time.monotonic()
    assert short(shared, "fallback", "second1.example.test") == ["198.51.100.7"]
    assert time.monotonic() - started < 3.0  # 1 s for the dead one, not the client's 5 s
    # The dead server is remembered: the next query goes straight to the live one.
    out = dig(shared, "fallback", "second2.example.test")
    assert status_of(out) == "NOERROR"
    assert int(re.search(r"Query time: (\d+) msec", out).group(1)) < 500  # type: ignore[union-attr]


def test_internal_only_container_gets_no_forwarding(shared: SandboxHost) -> None:
    assert status_of(dig(shared, "vault", "leak.example.test")) == "REFUSED"
    assert "leak.example.test" not in upstream_log(shared)
    assert short(shared, "vault", "vault") != []  # its own network still resolves


# --------------------------------------------------------------------------- changes


def wait_until(predicate: object, seconds: float = 1.0) -> float:
    """Seconds until predicate() is true (fails after `seconds`)."""
    started = time.monotonic()
    while True:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true after {seconds}s")
        time.sleep(0.05)


def test_answers_follow_connect_and_disconnect(fresh: SandboxHost) -> None:
    assert status_of(dig(fresh, "web", "secret")) == "NXDOMAIN"
    fresh.netctl("network", "connect", "priv", "web")
    # The command returns once the server serves the new records: no waiting needed.
    assert short(fresh, "web", "secret") == ["10.89.2.12"]
    assert short(fresh, "secret", "web") != []
    fresh.netctl("network", "disconnect", "priv", "web")
    assert status_of(dig(fresh, "web", "secret")) == "NXDOMAIN"
    # A new container is served (its own namespace, its own sockets) as soon as apply returns.
    fresh.write("/run/netctl/more.yaml", "apiVersion: netctl/v1\nkind: Container\n"
                "metadata: {name: late}\nspec: {networks: [app]}\n")
    fresh.netctl("apply", "-f", "/run/netctl/more.yaml")
    assert short(fresh, "late", "db") == ["10.89.1.11"]
    assert short(fresh, "db", "late") != []


LOAD = """
import sys, time, dns.message, dns.query, dns.exception
lost = 0
deadline = time.monotonic() + float(sys.argv[1])
n = 0
while time.monotonic() < deadline:
    name = ("db", "pool", "secret")[n % 3]
    try:
        dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.11", timeout=2)
    except dns.exception.Timeout:
        lost += 1
    n += 1
    time.sleep(0.002)
print(n, lost)
"""


def test_no_query_is_lost_while_the_topology_changes(fresh: SandboxHost) -> None:
    fresh.write("/run/netctl/load.py", LOAD)
    proc = fresh.popen(
        [PYTHON, "-m", "controller.cli", "exec", "web", "--", PYTHON, "/run/netctl/load.py", "6"],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.5)
    for _ in range(3):
        fresh.netctl("network", "connect", "priv", "web")
        fresh.netctl("network", "disconnect", "priv", "web")
    out, _ = proc.communicate(timeout=60)
    sent, lost = map(int, out.split())
    assert sent > 500 and lost == 0, (sent, lost)


def test_killed_worker_is_replaced_without_losing_its_sockets(fresh: SandboxHost) -> None:
    before = dns_status(fresh)
    fresh.run(f"kill -9 {before['pid']}")
    # The supervisor kept the sockets: this query waits in the buffer, then is answered.
    assert short(fresh, "web", "db") == ["10.89.1.11"]
    after = dns_status(fresh)
    assert after["pid"] != before["pid"] and after["supervisor"] == before["supervisor"]


def test_killed_server_is_restarted_by_the_next_apply(fresh: SandboxHost) -> None:
    supervisor = dns_status(fresh)["supervisor"]
    fresh.run(f"kill -9 {supervisor}")
    wait_until(lambda: fresh.netctl("dns", "status", check=False).returncode == 1, 3.0)
    assert status_of(dig(fresh, "web", "db", check=False)) == "no reply"
    # A dead server is drift: plan shows it, apply repairs it.
    assert "+ service embedded DNS server" in fresh.netctl("plan").stdout
    applied = fresh.netctl("apply", "-v", "-f", "/run/netctl/topology.yaml").stdout
    assert "+ service embedded DNS server" in applied
    assert short(fresh, "web", "db") == ["10.89.1.11"]
    assert fresh.netctl("plan").stdout.strip() == "no changes"


def test_the_host_can_resolve_container_names(fresh: SandboxHost) -> None:
    hosts = fresh.netctl("dns", "hosts").stdout
    assert re.search(r"^10\.89\.2\.12\tsecret secret\.priv", hosts, re.M)
    fresh.netctl("dns", "listen", "127.0.0.1:5353")
    out = fresh.run("dig +short +tries=1 @127.0.0.1 -p 5353 secret").stdout.split()
    assert out == ["10.89.2.12"]
    refused = fresh.run("dig +tries=1 @127.0.0.1 -p 5353 outside.example.test").stdout
    assert status_of(refused) == "REFUSED"  # no recursion for the host: no loops
    fresh.netctl("dns", "listen")
    assert fresh.run("dig +tries=1 +time=1 @127.0.0.1 -p 5353 secret", check=False).returncode != 0


def test_deleting_every_container_stops_the_server(fresh: SandboxHost) -> None:
    fresh.netctl("delete", "-f", "/run/netctl/topology.yaml")
    wait_until(lambda: fresh.netctl("dns", "status", check=False).returncode == 1, 6.0)
    fresh.netctl("apply", "-f", "/run/netctl/topology.yaml")
    assert short(fresh, "web", "db") == ["10.89.1.11"]


def test_the_server_ends_with_the_netctl_sandbox_it_was_started_in() -> None:
    script = (
        "netctl() { python -m controller.cli \"$@\"; }; "
        "printf 'apiVersion: netctl/v1\\nkind: Network\\nmetadata: {name: n}\\n---\\n"
        "apiVersion: netctl/v1\\nkind: Container\\nmetadata: {name: web}\\nspec: {networks: [n]}\\n'"
        " > /run/netctl/t.yaml && netctl apply -f /run/netctl/t.yaml >/dev/null 2>&1 && "
        "netctl exec web -- dig +short web && test -s /var/lib/netctl/dns/pid && readlink /proc/self/ns/net"
    )
    env = {**os.environ, "PATH": f"{os.path.dirname(PYTHON)}:{os.environ['PATH']}"}
    out = subprocess.run(  # a sandbox of its own, as a user would run it
        [PYTHON, "-m", "controller.cli", "--state-dir", "/var/lib/netctl", "sandbox", "--",
         "sh", "-c", script],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert out.returncode == 0, out.stderr
    address, namespace = out.stdout.split()
    assert address.startswith("172."), out.stdout  # DNS worked in there (so its server ran)
    # The sandbox's PID namespace ended with its command: nothing lives in its network any more.
    wait_until(lambda: namespace not in _network_namespaces(), 5.0)


def _network_namespaces() -> set[str]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                out.add(os.readlink(f"/proc/{entry}/ns/net"))
    return out


def test_a_container_serves_dns_on_port_53_and_still_resolves_through_127_0_0_11(
    fresh: SandboxHost,
) -> None:
    # The embedded server listens on ports the kernel picked; 127.0.0.11:53 is DNAT'd to them
    # in db's namespace, so db's own DNS server can bind 0.0.0.0:53, UDP and TCP.
    server = fresh.popen([PYTHON, "-m", "controller.cli", "exec", "db", "--", PYTHON,
                          "benchmarks/dns_upstream.py", "--listen", "0.0.0.0", "--seconds", "120"],
                         stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        for proto in ("", "+tcp "):
            assert short(fresh, "web", f"{proto}@10.89.1.11 www.example.test") == ["198.51.100.7"]
            assert short(fresh, "db", f"{proto}web") == ["10.89.1.10"]  # via 127.0.0.11
        bound = fresh.exec("db", "ss -Hlntu").stdout
        assert "0.0.0.0:53 " in bound and "127.0.0.11:53 " not in bound, bound
    finally:
        server.kill()
        server.wait()
