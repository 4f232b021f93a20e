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
. "${0%/*}/peer_lib.sh"  # no dirname process: the task counts are part of the result

base() { ip_bridge; }

add_one() {  # $1 = I
    names "$1"
    ip_container
}

remove_one() {  # $1 = I
    names "$1"
    ip link del "$veth"
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
}

peer_main "usage: peer_shell.sh setup|teardown N" "$@"
