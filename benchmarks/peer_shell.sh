#!/bin/bash
# Peer (a): the same job as `netctl apply`/`netctl delete` of N containers on one bridge,
# written as a plain shell script of `ip` commands, one command per step, `ip netns exec`
# for the steps inside a container's namespace. This is what a user would write by hand.
#
#   peer_shell.sh setup N      bridge br0 (172.17.0.1/16, up) + containers c1..cN
#   peer_shell.sh teardown N   remove containers c1..cN (the bridge stays, like docker0)
#
# Per container cI: namespace cI (lo up); veth pair vethXXXXXXXX (host side, on br0, up) /
# eth0 (in cI, MAC 02:42:ac:11:xx:xx, MTU 1500, 172.17.x.y/16, up); default route via
# 172.17.0.1; /etc/netns/cI/hosts and resolv.conf.
#
# ONLY run this inside a throwaway sandbox (benchmarks/run.py does; or `netctl sandbox --`).
set -eu

cmd=${1:?usage: peer_shell.sh setup|teardown N}
n=${2:?usage: peer_shell.sh setup|teardown N}
BRIDGE=br0
GATEWAY=172.17.0.1

hosts_file() {  # $1 = address, $2 = name
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    printf 'fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n'
    printf '%s\t%s\n' "$1" "$2"
}

case "$cmd" in
setup)
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/16" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for i in $(seq 1 "$n"); do
        ns=c$i
        h=$((i + 1))                                   # c1 -> 172.17.0.2
        addr=172.17.$((h >> 8)).$((h & 255))
        printf -v mac '02:42:ac:11:%02x:%02x' $((h >> 8)) $((h & 255))
        printf -v veth 'veth%08x' $((0x5eed0000 + i))

        ip netns add "$ns"
        ip netns exec "$ns" ip link set lo up
        ip link add "$veth" type veth peer name eth0 netns "$ns"
        ip link set "$veth" master "$BRIDGE"
        ip link set "$veth" up
        ip netns exec "$ns" ip link set eth0 address "$mac" mtu 1500
        ip netns exec "$ns" ip addr add "$addr/16" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        ip netns exec "$ns" ip route add default via "$GATEWAY"

        mkdir -p "/etc/netns/$ns"
        hosts_file "$addr" "$ns" > "/etc/netns/$ns/hosts"
        printf 'nameserver 127.0.0.11\noptions ndots:0\n' > "/etc/netns/$ns/resolv.conf"
    done
    ;;
teardown)
    for i in $(seq 1 "$n"); do
        ns=c$i
        printf -v veth 'veth%08x' $((0x5eed0000 + i))
        ip link del "$veth"
        ip netns del "$ns"
        rm -rf "/etc/netns/$ns"
    done
    ;;
*)
    echo "usage: peer_shell.sh setup|teardown N" >&2
    exit 2
    ;;
esac
