#!/usr/bin/env python3
"""Firewall benchmark, peer "floor": containers on one bridge, each publishing one TCP port, as
straight-line pyroute2 for the network plus ONE `iptables-restore --noflush` process for the
whole ruleset (all three tables in one input). No spec, no state, no observation, no plan:
the lower bound for a Python tool doing this job.

    firewall_peer_floor.py setup N           bridge br0, base chains and rules, containers c1..cN
    firewall_peer_floor.py add FIRST [LAST]  containers FIRST..LAST (setup has run before)
    firewall_peer_floor.py teardown N        remove containers c1..cN and their rules (the bridge
                                             and the base chains stay)

The network part is benchmarks/peer_floor.py's (namespaces created in-process, one RTM_NEWLINK
per veth with its peer already in the namespace; teardown deletes all veths as one interface
group). The rules are netctl's ruleset with chains named BENCH* (see firewall_peer_shell.sh):
per container a DNAT (nat), an ACCEPT (filter), a hairpin MASQUERADE (nat) and an
anti-spoofing DROP (raw). `add` appends only the new containers' rules (`-A`), teardown
deletes them (`-D`): the floor never reads the ruleset back.

ONLY run this inside a throwaway sandbox (benchmarks/firewall_run.py does).
"""

from __future__ import annotations

import subprocess
import sys

from peer_floor import BRIDGE, add_containers, make_bridge, names, remove_containers
from pyroute2 import IPRoute

SUBNET = "172.17.0.0/16"
IN = f"BENCH-IN-{BRIDGE}"
DNAT = f"BENCH-DNAT-{BRIDGE}"

BASE = {
    "raw": [  # the first: loopback addresses never arrive from the bridge (route_localnet is on)
        ":BENCH-RAW - [0:0]",
        f"-A BENCH-RAW -d 127.0.0.0/8 -i {BRIDGE} -j DROP",
        "-I PREROUTING 1 -j BENCH-RAW",
    ],
    "nat": [
        ":BENCH - [0:0]",
        f":{DNAT} - [0:0]",
        ":BENCH-POSTROUTING - [0:0]",
        f"-A BENCH -j {DNAT}",
        f"-A BENCH-POSTROUTING -s {SUBNET} ! -o {BRIDGE} -j MASQUERADE",
        f"-A BENCH-POSTROUTING -o {BRIDGE} -m addrtype --src-type LOCAL -j MASQUERADE",
        "-I PREROUTING 1 -m addrtype --dst-type LOCAL -j BENCH",
        "-I OUTPUT 1 -m addrtype --dst-type LOCAL -j BENCH",
        "-I POSTROUTING 1 -j BENCH-POSTROUTING",
    ],
    "filter": [
        ":FORWARD DROP [0:0]",
        ":BENCH-FORWARD - [0:0]",
        f":{IN} - [0:0]",
        ":BENCH-ISOLATION-STAGE-1 - [0:0]",
        ":BENCH-ISOLATION-STAGE-2 - [0:0]",
        ":BENCH-USER - [0:0]",
        f"-A BENCH-FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A BENCH-FORWARD -o {BRIDGE} -j {IN}",
        "-A BENCH-FORWARD -j BENCH-ISOLATION-STAGE-1",
        f"-A BENCH-FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT",
        f"-A BENCH-FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT",
        f"-A BENCH-FORWARD -o {BRIDGE} -j DROP",
        f"-A BENCH-ISOLATION-STAGE-1 -i {BRIDGE} ! -o {BRIDGE} -j BENCH-ISOLATION-STAGE-2",
        f"-A BENCH-ISOLATION-STAGE-2 -o {BRIDGE} -j DROP",
        "-I FORWARD 1 -j BENCH-FORWARD",
        "-I FORWARD 1 -j BENCH-USER",
    ],
}


def container_rules(i: int, op: str) -> dict[str, list[str]]:
    """The four rules of container i, as `-A` or `-D` lines per table."""
    _, _, addr, _ = names(i)
    return {
        "raw": [f"{op} BENCH-RAW -d {addr}/32 ! -i {BRIDGE} -j DROP"],
        "nat": [
            f"{op} {DNAT} -p tcp -m tcp --dport {10000 + i} -j DNAT --to-destination {addr}:80",
            f"{op} BENCH-POSTROUTING -s {addr}/32 -d {addr}/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
        ],
        "filter": [
            f"{op} {IN} -d {addr}/32 -o {BRIDGE} -p tcp -m tcp --dport 80"
            " -m conntrack --ctstate DNAT -j ACCEPT",
        ],
    }


def restore(tables: dict[str, list[str]]) -> None:
    """One iptables-restore process for everything (each table is its own atomic commit)."""
    text = "".join(
        f"*{t}\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
        for t, lines in tables.items()
        if lines
    )
    subprocess.run(["iptables-restore", "--noflush"], input=text, text=True, check=True)


def base(ipr: IPRoute) -> int:
    br = make_bridge(ipr)
    for name in ("net/ipv4/ip_forward", f"net/ipv4/conf/{BRIDGE}/route_localnet"):
        with open(f"/proc/sys/{name}", "w") as f:
            f.write("1")
    return br


def add(ipr: IPRoute, br: int, first: int, last: int) -> dict[str, list[str]]:
    """Containers first..last; returns their rules (the caller restores them)."""
    add_containers(ipr, br, first, last)
    rules: dict[str, list[str]] = {"raw": [], "nat": [], "filter": []}
    for i in range(first, last + 1):
        for table, lines in container_rules(i, "-A").items():
            rules[table].extend(lines)
    return rules


def setup(n: int) -> None:
    with IPRoute() as ipr:
        br = base(ipr)
        rules = add(ipr, br, 1, n)
    restore({t: BASE[t] + rules[t] for t in BASE})


def add_range(first: int, last: int) -> None:
    with IPRoute() as ipr:
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        rules = add(ipr, br, first, last)
    restore(rules)


def teardown(n: int) -> None:
    rules: dict[str, list[str]] = {"raw": [], "nat": [], "filter": []}
    for i in range(1, n + 1):
        for table, lines in container_rules(i, "-D").items():
            rules[table].extend(lines)
    restore(rules)
    remove_containers(n)


def main(argv: list[str]) -> int:
    usage = "usage: firewall_peer_floor.py setup N | add FIRST [LAST] | teardown N"
    if len(argv) < 2 or argv[0] not in ("setup", "add", "teardown"):
        print(usage, file=sys.stderr)
        return 2
    if argv[0] == "setup":
        setup(int(argv[1]))
    elif argv[0] == "add":
        add_range(int(argv[1]), int(argv[2] if len(argv) > 2 else argv[1]))
    else:
        teardown(int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
