"""Valid-looking but hostile manifests, in one sandbox host: each is refused by validate with
its file and line, or applies; either way a later unrelated apply still works and nothing is
left that netctl does not own.

Then: a change the kernel refuses is rolled back out of the store and the kernel; every
name the loader accepts is one the kernel and iptables take literally; the state directory
is root's alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import names
from tests.sandbox_host import STATE_DIR, SandboxHost

OK = """
apiVersion: netctl/v1
kind: Network
metadata: {name: okn}
spec: {ipam: {config: [{subnet: 10.77.0.0/24}]}}
---
apiVersion: netctl/v1
kind: Container
metadata: {name: okc}
spec: {networks: [okn]}
"""


def network(options: str = "", ipam: str = "", extra: str = "") -> str:
    spec = []
    if options:
        spec.append(f"options: {{{options}}}")
    if ipam:
        spec.append(f"ipam: {{config: [{ipam}]}}")
    if extra:
        spec.append(extra)
    body = ", ".join(spec)
    return f"apiVersion: netctl/v1\nkind: Network\nmetadata: {{name: hostile}}\nspec: {{{body}}}\n"


def container(spec: str, name: str = "hc") -> str:
    return f"apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec: {{{spec}}}\n"


def bridge(name: str) -> str:
    return network(f"com.docker.network.bridge.name: {json.dumps(name)}")


REJECTED = {
    # names that reach the kernel, iptables and sysctl paths
    "percent-x": bridge("br%x"),
    "template": bridge("br%d"),
    "all": bridge("all"),
    "lo": bridge("lo"),
    "nbsp": bridge("br\u00a0x"),
    "quoted": bridge('"netctl0"'),
    "quote-inside": bridge('br"x -j MASQUERADE'),
    "wildcard": bridge("b+"),
    "negation": bridge("!br"),
    "netctl-shaped": bridge("br-0123456789ab"),
    "taken-by-default": bridge("netctl0"),
    # subnets the host would route to a bridge, or that leave no room
    "multicast": network(ipam="{subnet: 224.0.0.0/4}"),
    "everything-v6": network(ipam='{subnet: "::/0"}', extra="enableIPv6: true"),
    "loopback": network(ipam="{subnet: 127.0.0.0/8}"),
    "this-network": network(ipam="{subnet: 0.0.0.0/8}"),
    "reserved": network(ipam="{subnet: 240.0.0.0/4}"),
    "broadcast": network(ipam="{subnet: 255.255.255.255/32}"),
    "slash-31": network(ipam="{subnet: 10.9.0.0/31}"),
    "slash-32": network(ipam="{subnet: 10.9.0.0/32}"),
    "slash-127": network(ipam='{subnet: "fd00:9::/127"}', extra="enableIPv6: true"),
    "link-local-v6": network(ipam='{subnet: "fe80::/64"}', extra="enableIPv6: true"),
    "ipv6-small-mtu": network("com.docker.network.driver.mtu: 1000",
                              '{subnet: "fd00:9::/64"}', "enableIPv6: true"),
    # values that used to fail late
    "binding-x": network("com.docker.network.bridge.host_binding_ipv4: x"),
    "binding-hex": network("com.docker.network.bridge.host_binding_ipv4: 0x0a.0.0.1"),
    "binding-bracketed": network('com.docker.network.bridge.host_binding_ipv4: "[::1]"'),
    "overlay-without-store": network(extra="driver: overlay"),
    "hostname-65": container(f"hostname: {'h' * 65}"),
    "label-64": container(f"hostname: {'h' * 64}.x"),
    "name-64": container("{}", name="c" * 64),
    # what files cannot carry
    "extra-host-nul": container('extraHosts: ["bad\\0host:10.0.0.1"]'),
    "extra-host-esc": container('extraHosts: ["bad\\ehost:10.0.0.1"]'),
    "extra-host-hash": container('extraHosts: ["#hidden:10.0.0.1"]'),
    "dns-nul": container('dns: ["10.0.0.1\\0"]'),
    "search-hash": container('dnsSearch: ["#hidden"]'),
    "search-esc": container('dnsSearch: ["a\\eb"]'),
    "option-hash": container('dnsOptions: ["ndots:1#x"]'),
    "option-nul": container('dnsOptions: ["ndots:1\\0"]'),
}

APPLIED = {
    "dotted-bridge": bridge("br.lan"),
    "fifteen-bytes": bridge("b2345678901234x"),
    "dotted-hostname-64": container(f"hostname: {'h' * 31}.{'h' * 32}"),
    "dns-names": container('dnsSearch: ["corp.example.", "_svc.example"], dnsOptions: ["ndots:2", "edns0"], '
                           'extraHosts: ["db_1.local:10.0.0.7"]'),
}


@pytest.fixture(scope="module")
def shared() -> Iterator[SandboxHost]:
    h = SandboxHost()
    try:
        h.write("/tmp/ok.yaml", OK)
        h.netctl("apply", "-f", "/tmp/ok.yaml")
        yield h
    finally:
        h.close()


def links(host: SandboxHost) -> dict[str, str]:
    """Every link of the host: name -> its alias (netctl's links carry `netctl:<id>`)."""
    return {link["ifname"]: link.get("ifalias", "") for link in json.loads(host.run("ip -j link").stdout)}


def foreign(host: SandboxHost) -> set[str]:
    return {n for n, alias in links(host).items() if n != "lo" and not names.is_owned_alias(alias)}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_hostile_values_are_refused_with_file_and_line(shared: SandboxHost, case: str) -> None:
    shared.write("/tmp/hostile.yaml", REJECTED[case])
    for command in ("validate", "apply"):
        result = shared.netctl(command, "-f", "/tmp/hostile.yaml", check=False)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "error: /tmp/hostile.yaml:" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert foreign(shared) == set()
    shared.netctl("apply", "-f", "/tmp/ok.yaml")  # the store was not poisoned
    assert shared.netctl("plan").stdout.strip() == "no changes"


@pytest.mark.parametrize("case", sorted(APPLIED))
def test_unusual_but_valid_values_apply_and_leave_nothing_behind(shared: SandboxHost, case: str) -> None:
    shared.write("/tmp/unusual.yaml", APPLIED[case])
    shared.netctl("apply", "-f", "/tmp/unusual.yaml")
    shared.netctl("apply", "-f", "/tmp/ok.yaml")
    assert shared.netctl("plan").stdout.strip() == "no changes"
    if case == "dotted-bridge":  # the sysctl reached the dotted device, not a wrong path
        assert shared.run("cat /proc/sys/net/ipv4/conf/br.lan/route_localnet").stdout.strip() == "1"
        assert "-A NETCTL-FORWARD -o br.lan -j DROP" in shared.run("iptables-save").stdout
    if case == "dotted-hostname-64":
        assert shared.exec("hc", "hostname").stdout.strip() == f"{'h' * 31}.{'h' * 32}"
    shared.netctl("delete", "-f", "/tmp/unusual.yaml")
    assert foreign(shared) == set()


def test_a_change_the_kernel_refuses_is_rolled_back(shared: SandboxHost) -> None:
    # A device netctl does not own (a veth) has the bridge's name: the kernel refuses the bridge.
    shared.run("ip link add taken0 type veth peer name taken1")
    try:
        shared.write("/tmp/taken.yaml", bridge("taken0").replace("spec: {", "spec: {ipam: {config: "
                     "[{subnet: 10.78.0.0/24}]}, ", 1) + "---\n" + container("networks: [hostile]"))
        before = links(shared)
        result = shared.netctl("apply", "-f", "/tmp/taken.yaml", check=False)
        assert result.returncode == 1, result.stderr
        assert "error: /tmp/taken.yaml:1 (Network hostile): create link:/taken0 failed" in result.stderr
        assert "rolled back" in result.stderr and "Traceback" not in result.stderr
        # Nothing of it stays: not in the store, not in the kernel (the container's namespace
        # and veth made before the bridge failed are gone again).
        listed = json.loads(shared.netctl("-o", "json", "network", "ls").stdout)
        assert "hostile" not in {n["Name"] for n in listed}
        assert links(shared) == before
        assert "hc" not in shared.run("ip netns list").stdout
        shared.netctl("apply", "-f", "/tmp/ok.yaml")
        assert shared.netctl("plan").stdout.strip() == "no changes"
    finally:
        shared.run("ip link del taken0")


def test_the_state_directory_is_roots_alone(shared: SandboxHost) -> None:
    modes = shared.run(["stat", "-c", "%a %n", STATE_DIR, f"{STATE_DIR}/state.db",
                        f"{STATE_DIR}/lock"]).stdout.split("\n")
    assert modes[:3] == [f"700 {STATE_DIR}", f"600 {STATE_DIR}/state.db", f"600 {STATE_DIR}/lock"], modes
    assert shared.run("stat -c %a /etc/netns/okc/hosts").stdout.strip() == "644"  # the container's /etc


# ---------------------------------------------------------------------------- names, literally

CHECK_NAMES = r"""
import json, subprocess, sys
from pyroute2 import IPRoute
from controller import names
out = {}
with IPRoute() as ip:
    for name in json.loads(sys.argv[1]):
        ip.link("add", ifname=name, kind="bridge")
        found = [l.get_attr("IFLA_IFNAME") for l in ip.get_links() if l.get_attr("IFLA_IFNAME") == name]
        rules = f"*filter\n-A INPUT -i {name} -j ACCEPT\n-A FORWARD -o {name} -j DROP\nCOMMIT\n"
        subprocess.run(["iptables-restore", "--noflush"], input=rules, text=True, check=True)
        saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
        path = names.sysctl_path(f"net.ipv4.conf.{names.sysctl_device(name)}.route_localnet")
        out[name] = {
            "kernel": found == [name],
            "iptables": f"-A INPUT -i {name} -j ACCEPT" in saved.splitlines()
                        and f"-A FORWARD -o {name} -j DROP" in saved.splitlines(),
            "sysctl": open(path).read().strip() in ("0", "1"),
        }
        subprocess.run(["iptables", "-F", "INPUT"], check=True)
        subprocess.run(["iptables", "-F", "FORWARD"], check=True)
        ip.link("del", ifname=name)
print(json.dumps(out))
"""

# Anything at all, including what the kernel or iptables would interpret: the loader decides.
candidates = st.text(st.characters(codec="utf-8"), min_size=0, max_size=17) | st.from_regex(
    r"\A[A-Za-z0-9][A-Za-z0-9_.%+!:/ -]{0,15}\Z")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(candidates, min_size=1, max_size=12, unique=True))
def test_every_accepted_name_is_taken_literally(shared: SandboxHost, drawn: list[str]) -> None:
    accepted = [n for n in drawn if names.interface_name_problem(n) is None and n not in links(shared)]
    if not accepted:
        return
    result = shared.run([sys.executable, "-c", CHECK_NAMES, json.dumps(accepted)])
    verdicts = json.loads(result.stdout)
    assert all(all(v.values()) for v in verdicts.values()), verdicts
