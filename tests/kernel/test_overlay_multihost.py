"""Overlay networks across three sandbox hosts on an underlay, etcd in a fourth.

One lab for the module (building it costs seconds); the tests run in order and the last
ones break things on purpose (etcd stopped, a host removed).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from controller.cluster import keys, server
from controller.cluster.lab import NETCTL
from tests.multihost import (
    Lab,
    agent_logs,
    apply,
    container,
    fdb,
    ip_of,
    lab,
    network,
    overlay_ns,
    pings,
    wait_until,
)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not server.available(), reason="etcd is not installed"),
]

TTL = 5  # seconds: short for the test, long enough for a loaded CI machine


@pytest.fixture(scope="module")
def cluster() -> Iterator[Lab]:
    with lab(hosts=3, ttl=TTL) as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def placed(cluster: Lab) -> dict[str, str]:
    """ov1 created on host1; a1, a2, a3 on hosts 1, 2, 3; name -> address."""
    h1, h2, h3 = cluster.hosts
    apply(cluster, h1, network("ov1"), container("a1", ["ov1"]))
    apply(cluster, h2, container("a2", ["ov1"]))  # ov1 is known on host2 through etcd only
    apply(cluster, h3, container("a3", ["ov1"]))
    return {"a1": ip_of(h1, "a1"), "a2": ip_of(h2, "a2"), "a3": ip_of(h3, "a3")}


def test_an_overlay_network_is_global_on_every_host(cluster: Lab, placed: dict[str, str]) -> None:
    listings = []
    for h in cluster.hosts:
        rows = {n["Name"]: n for n in json.loads(h.netctl("-o", "json", "network", "ls").stdout)}
        assert rows["ov1"]["Driver"] == "overlay" and rows["ov1"]["Scope"] == "global"
        listings.append(rows["ov1"]["ID"])
    assert len(set(listings)) == 1, "the same network (same ID) on every host"
    # Addresses come from the global pool, once each.
    assert sorted(placed.values()) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    inspect = json.loads(cluster.hosts[1].netctl("network", "inspect", "ov1").stdout)[0]
    assert inspect["Scope"] == "global" and inspect["Driver"] == "overlay"
    assert int(inspect["Options"]["com.docker.network.driver.overlay.vxlanid_list"]) >= 4096


def test_ping_and_tcp_across_hosts(cluster: Lab, placed: dict[str, str]) -> None:
    h1, h2, h3 = cluster.hosts
    where = {"a1": h1, "a2": h2, "a3": h3}
    # The agents program the entries for endpoints that appeared after each host's apply.
    for src, host in where.items():
        for dst, ip in placed.items():
            if src != dst:
                wait_until(lambda host=host, src=src, ip=ip: pings(host, src, ip), timeout=10,
                           explain=lambda: agent_logs(cluster))
    # The way out: the local gateway bridge, masqueraded (host2 has a 172.18/16 of its own,
    # so a reply to the unmasqueraded source would never come back).
    assert h1.exec("a1", "ip route show default").stdout.startswith("default via 172.18.0.1 dev eth1")
    assert pings(h1, "a1", h2.address)
    # Full-size packets: the overlay MTU (1450) fits the underlay's 1500 with VXLAN's 50.
    assert h1.exec("a1", "cat /sys/class/net/eth0/mtu").stdout.strip() == "1450"
    assert pings(h1, "a1", placed["a3"], size=1422, dont_fragment=True)

    # TCP: a listener on host2's a2, a client on host1's a1, a few hundred KB through it.
    server_proc = h2.popen([*NETCTL, "exec", "a2", "--", "python3", "-c",
                            "import socket,hashlib;s=socket.socket();s.bind(('0.0.0.0',8080));s.listen();"
                            "c,_=s.accept();h=hashlib.sha256()\n"
                            "while (d:=c.recv(65536)): h.update(d)\n"
                            "print(h.hexdigest())"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        payload = "import socket,time\nfor i in range(50):\n try:\n  c=socket.create_connection(" \
                  f"('{placed['a2']}',8080),timeout=2);break\n except OSError: time.sleep(0.1)\n" \
                  "c.sendall(bytes(range(256))*2000);c.close()"
        h1.exec("a1", f"python3 -c \"{payload}\"")
        out, _ = server_proc.communicate(timeout=20)
    finally:
        server_proc.kill()
    import hashlib

    assert out.strip() == hashlib.sha256(bytes(range(256)) * 2000).hexdigest()


def test_the_underlay_carries_vxlan_on_udp_4789(cluster: Lab, placed: dict[str, str]) -> None:
    h1, h2, _ = cluster.hosts
    ns = overlay_ns(h2, "ov1")
    before = json.loads(h2.run(f"{ns} ip -j -s link show").stdout)
    dump = h2.popen(["timeout", "10", "tcpdump", "-l", "-n", "-i", "ul0", "-c", "4", "udp"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.8)  # tcpdump attaches
    h1.exec("a1", f"ping -c3 -i0.2 -W1 {placed['a2']}")
    out, err = dump.communicate(timeout=15)
    assert ".4789: VXLAN" in out, out + err
    vni = json.loads(h2.netctl("network", "inspect", "ov1").stdout)[0]["Options"][
        "com.docker.network.driver.overlay.vxlanid_list"]
    assert re.search(rf"vni {vni}\b", out), out
    after = json.loads(h2.run(f"{ns} ip -j -s link show").stdout)

    def rx(links: list[dict[str, object]]) -> int:
        vx = next(x for x in links if str(x["ifname"]).startswith("vx-"))
        return int(vx["stats64"]["rx"]["packets"])  # type: ignore[index]

    assert rx(after) - rx(before) >= 3
    # No flooding: the VXLAN device has no default (all-zeros) destination.
    assert "00:00:00:00:00:00" not in fdb(h2, "ov1")


def test_two_overlay_networks_are_isolated(cluster: Lab, placed: dict[str, str]) -> None:
    h1, h2, _ = cluster.hosts
    apply(cluster, h2, network("ov2"), container("b2", ["ov2"]))
    apply(cluster, h1, container("b1", ["ov2"]))
    b2 = ip_of(h2, "b2")
    wait_until(lambda: pings(h1, "b1", b2), timeout=10, explain=lambda: agent_logs(cluster))  # ov2 works
    assert not b2.startswith("10.0.0."), "another /24 of the pool"
    assert not pings(h1, "b1", placed["a2"])  # no route between overlays
    assert not pings(h1, "a1", b2)
    # Even with an address in ov1's subnet, b1 is on another segment (another VNI).
    h1.exec("b1", "ip addr add 10.0.0.250/24 dev eth0")
    assert not pings(h1, "b1", placed["a2"])
    h1.exec("b1", "ip addr del 10.0.0.250/24 dev eth0")


def test_concurrent_allocation_from_all_hosts(cluster: Lab, placed: dict[str, str]) -> None:
    """Every host applies new containers at the same moment, several rounds: no address is
    handed out twice, and every allocation is in etcd exactly once."""
    hosts = cluster.hosts
    for round_ in range(3):
        procs = []
        for i, h in enumerate(hosts):
            docs = [container(f"r{round_}h{i}c{k}", ["ov1"]) for k in range(3)]
            path = f"{cluster.dir}/round{round_}-{h.name}.yaml"
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n---\n".join(docs))
            procs.append(h.popen([*NETCTL, "apply", "-f", path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    with cluster.client() as client:
        kvs = client.get_prefix(keys.address_prefix("ov1")).kvs
    held = [kv.key.rsplit("/", 1)[1] for kv in kvs]
    assert len(held) == len(set(held)) == 3 + 3 * 3 * 3
    seen: list[str] = []
    for h in hosts:
        for row in json.loads(h.netctl("-o", "json", "container", "ls").stdout):
            seen.extend(a.split("/")[0] for a in str(row["IPv4"]).split(",") if a.startswith("10.0.0."))
    assert sorted(seen) == sorted(held)
    # And networks created on every host at once get distinct VNIs and subnets.
    procs = [h.popen([*NETCTL, "network", "create", "-d", "overlay",
                      f"net-{h.name}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for h in hosts]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    inspected = [json.loads(h.netctl("network", "inspect", f"net-{h.name}").stdout)[0] for h in hosts]
    vnis = {n["Options"]["com.docker.network.driver.overlay.vxlanid_list"] for n in inspected}
    subnets = {n["IPAM"]["Config"][0]["Subnet"] for n in inspected}
    assert len(vnis) == len(subnets) == 3


def test_preflight_finds_a_blocked_udp_4789_and_a_small_underlay_mtu(
    cluster: Lab, placed: dict[str, str]
) -> None:
    h1, h2, h3 = cluster.hosts
    ok = h1.netctl("overlay", "preflight")
    assert ok.returncode == 0 and ok.stdout.count("ok") >= 4, ok.stdout
    # A firewall on host2 drops VXLAN: everything else looks fine, the probe says so.
    h2.run("iptables -I INPUT -p udp --dport 4789 -j DROP")
    try:
        blocked = h1.netctl("overlay", "preflight", "--timeout", "1", check=False)
    finally:
        h2.run("iptables -D INPUT -p udp --dport 4789 -j DROP")
    assert blocked.returncode == 1
    line = next(ln for ln in blocked.stdout.splitlines() if "10.200.0.12" in ln and "udp/4789" in ln)
    assert "FAIL" in line and "blocked" in line, blocked.stdout
    assert re.search(r"udp/4789\s+10\.200\.0\.13\s+ok", blocked.stdout), blocked.stdout
    # An underlay whose MTU cannot carry 1450 + 50: refused before anything is changed.
    h3.run("ip link set ul0 mtu 1400")
    try:
        refused = apply(cluster, h3, container("toolarge", ["ov1"]), check=False)
    finally:
        h3.run("ip link set ul0 mtu 1500")
    assert refused.returncode == 2, refused.stderr
    assert "1450 + 50 bytes of VXLAN headers = 1500 > 1400, the MTU of ul0" in refused.stderr
    assert "toolarge" not in h3.run(["ip", "netns", "list"]).stdout


def test_etcd_down_keeps_traffic_flowing_and_changes_resume(cluster: Lab, placed: dict[str, str]) -> None:
    h1, h2, h3 = cluster.hosts
    assert cluster.etcd is not None
    cluster.etcd.stop()
    try:
        assert pings(h1, "a1", placed["a2"]) and pings(h3, "a3", placed["a1"])
        # Local-only work goes on.
        apply(cluster, h2, container("local1", ["bridge"]))
        assert pings(h2, "local1", ip_of(h2, "local1"))
        # A new overlay endpoint cannot be allocated now: said plainly, nothing changed.
        failed = apply(cluster, h2, container("late", ["ov1"]), check=False)
        assert failed.returncode == 1 and "cluster store unreachable" in failed.stderr
        assert pings(h2, "a2", placed["a3"])  # still forwarding
    finally:
        cluster.etcd.start()
    apply(cluster, h2, container("late", ["ov1"]))
    late = ip_of(h2, "late")
    wait_until(lambda: pings(h1, "a1", late), timeout=15,  # the agents reconnected, caught up
               explain=lambda: fdb(h1, "ov1") + agent_logs(cluster))
    assert {n: ip_of(h, n) for n, h in (("a1", h1), ("a2", h2), ("a3", h3))} == placed


def test_a_dead_host_disappears_from_the_others(cluster: Lab, placed: dict[str, str]) -> None:
    h1, h2, h3 = cluster.hosts
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in placed["a3"].split("."))
    assert mac in fdb(h1, "ov1")
    cluster.remove_host(h3)
    seconds = wait_until(lambda: mac not in fdb(h1, "ov1") and mac not in fdb(h2, "ov1"),
                         timeout=TTL + 5, explain=lambda: agent_logs(cluster))
    assert seconds <= TTL + 4
    assert not pings(h1, "a1", placed["a3"])
    assert pings(h1, "a1", placed["a2"])
