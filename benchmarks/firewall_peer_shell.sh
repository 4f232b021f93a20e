#!/bin/bash
# Firewall benchmark, peer "shell": containers on one bridge, each publishing one TCP port,
# written the way a user would by hand: one `ip` command per network step (`ip netns exec` for
# the steps inside a namespace) and ONE `iptables` CALL PER RULE. The rules are netctl's ruleset
# (Docker's bridge-driver semantics), with chains named BENCH* instead of NETCTL* and br0 as the
# bridge, so that the three of netctl, this script and firewall_peer_floor.py end up with the
# same rules (benchmarks/firewall_run.py compares them).
#
#   firewall_peer_shell.sh setup N          bridge br0, base chains and rules, containers c1..cN
#   firewall_peer_shell.sh add FIRST [LAST] containers FIRST..LAST (setup has run before)
#   firewall_peer_shell.sh teardown N       remove containers c1..cN and their rules (the bridge
#                                           and the base chains stay, like netctl's default bridge)
#
# Container cI: namespace cI (lo up); veth vethXXXXXXXX on br0 / eth0 (MAC 02:42:ac:11:xx:xx,
# MTU 1500, 172.17.x.y/16, up) with a default route via 172.17.0.1; /etc/netns/cI/{hosts,
# resolv.conf}; host port 10000+I -> cI:80/tcp: DNAT (nat), ACCEPT (filter), hairpin
# MASQUERADE (nat) and the anti-spoofing DROP (raw) - 4 rules, 4 iptables calls.
#
# ONLY run this inside a throwaway sandbox (benchmarks/firewall_run.py does).
set -eu
. "${0%/*}/peer_lib.sh"  # no dirname process: the task counts are part of the result
SUBNET=172.17.0.0/16
IN=BENCH-IN-$BRIDGE
DNAT=BENCH-DNAT-$BRIDGE

rules() {  # $1 = -A | -D: the container's four rules
    iptables -t nat "$1" "$DNAT" -p tcp -m tcp --dport "$port" -j DNAT --to-destination "$addr:80"
    iptables -t filter "$1" "$IN" -d "$addr/32" -o "$BRIDGE" -p tcp -m tcp --dport 80 \
        -m conntrack --ctstate DNAT -j ACCEPT
    iptables -t nat "$1" BENCH-POSTROUTING -s "$addr/32" -d "$addr/32" -p tcp -m tcp --dport 80 -j MASQUERADE
    iptables -t raw "$1" BENCH-RAW -d "$addr/32" ! -i "$BRIDGE" -j DROP
}

base() {
    ip_bridge
    echo 1 > /proc/sys/net/ipv4/ip_forward
    echo 1 > "/proc/sys/net/ipv4/conf/$BRIDGE/route_localnet"
    for chain in BENCH-FORWARD "$IN" BENCH-ISOLATION-STAGE-1 BENCH-ISOLATION-STAGE-2 BENCH-USER; do
        iptables -t filter -N "$chain"
    done
    iptables -t filter -A BENCH-FORWARD -o "$BRIDGE" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    iptables -t filter -A BENCH-FORWARD -o "$BRIDGE" -j "$IN"
    iptables -t filter -A BENCH-FORWARD -j BENCH-ISOLATION-STAGE-1
    iptables -t filter -A BENCH-FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
    iptables -t filter -A BENCH-FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j ACCEPT
    iptables -t filter -A BENCH-FORWARD -o "$BRIDGE" -j DROP
    iptables -t filter -A BENCH-ISOLATION-STAGE-1 -i "$BRIDGE" ! -o "$BRIDGE" -j BENCH-ISOLATION-STAGE-2
    iptables -t filter -A BENCH-ISOLATION-STAGE-2 -o "$BRIDGE" -j DROP
    iptables -t filter -I FORWARD 1 -j BENCH-FORWARD
    iptables -t filter -I FORWARD 1 -j BENCH-USER
    iptables -t filter -P FORWARD DROP
    for chain in BENCH "$DNAT" BENCH-POSTROUTING; do
        iptables -t nat -N "$chain"
    done
    iptables -t nat -A BENCH -j "$DNAT"
    iptables -t nat -A BENCH-POSTROUTING -s "$SUBNET" ! -o "$BRIDGE" -j MASQUERADE
    iptables -t nat -A BENCH-POSTROUTING -o "$BRIDGE" -m addrtype --src-type LOCAL -j MASQUERADE
    iptables -t nat -I PREROUTING 1 -m addrtype --dst-type LOCAL -j BENCH
    iptables -t nat -I OUTPUT 1 -m addrtype --dst-type LOCAL -j BENCH
    iptables -t nat -I POSTROUTING 1 -j BENCH-POSTROUTING
    iptables -t raw -N BENCH-RAW
    iptables -t raw -A BENCH-RAW -d 127.0.0.0/8 -i "$BRIDGE" -j DROP  # route_localnet is on
    iptables -t raw -I PREROUTING 1 -j BENCH-RAW
}

add_one() {  # $1 = I
    names "$1"
    ip_container
    rules -A
}

remove_one() {  # $1 = I
    names "$1"
    rules -D
    ip link del "$veth"
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
}

peer_main "usage: firewall_peer_shell.sh setup N | add FIRST [LAST] | teardown N" "$@"
