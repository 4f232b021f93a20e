"""controller.kernel.rtdump (the observer's own netlink dump) against pyroute2, in a sandbox."""

from __future__ import annotations

import json
import sys

from tests.sandbox_host import SandboxHost

COMPARE = r"""
import json, sys
from pyroute2 import IPRoute
from controller.kernel import rtdump
ours = rtdump.dump(None)
with IPRoute() as ip:
    links = {l["index"]: (l.get_attr("IFLA_IFNAME"), l.get_attr("IFLA_MTU"), l.get_attr("IFLA_ADDRESS"),
                          l.get_attr("IFLA_IFALIAS") or "") for l in ip.get_links()}
    addrs = sorted((a["index"], a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr())
    routes = sorted((r.get_attr("RTA_DST") or "", r["dst_len"], r.get_attr("RTA_OIF") or 0)
                    for r in ip.get_routes(table=254))
print(json.dumps({
    "links": links == {i: (l.name, l.mtu, l.mac, l.alias) for i, l in ours.links.items()},
    "addresses": addrs == sorted((a.index, a.address, a.prefixlen) for a in ours.addresses),
    "routes": routes == sorted((r.dst or "", r.dst_len, r.oif) for r in ours.routes),
    "count": len(links),
}))
"""

CHURN = r"""
import subprocess, sys
from controller.kernel import rtdump
churn = subprocess.Popen(["sh", "-c", "while true; do ip link add chx type veth peer name chy; "
                          "ip addr add 10.99.0.1/24 dev chx; ip link del chx; done"])
bad = 0
try:
    for _ in range(300):
        d = rtdump.dump(None)
        bad += sum(1 for a in d.addresses if a.index not in d.links)
finally:
    churn.kill()
print(bad)
"""


def test_rtdump_reads_what_pyroute2_reads(host: SandboxHost) -> None:
    host.run("ip link add br-t type bridge && ip link set br-t up alias netctl:x mtu 1400 && "
             "ip addr add 10.98.0.1/24 dev br-t && ip addr add fd00:98::1/64 dev br-t nodad && "
             "ip link add va type veth peer name vb && ip link set va master br-t up && "
             "ip route add 10.97.0.0/16 via 10.98.0.2")
    got = json.loads(host.run([sys.executable, "-c", COMPARE]).stdout)
    assert got == {"links": True, "addresses": True, "routes": True, "count": 4}, got


def test_a_dump_interrupted_by_changes_is_retried_consistent(host: SandboxHost) -> None:
    assert host.run([sys.executable, "-c", CHURN]).stdout.strip() == "0"
