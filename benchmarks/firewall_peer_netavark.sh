#!/bin/bash
# Firewall benchmark, peer "netavark": containers on one bridge, each publishing one TCP port,
# with podman's network backend invoked directly, the way podman runs it:
#   netavark --config DIR setup /run/netns/cI < cI.json        (teardown: the same with `teardown`)
# where cI.json is netavark's network-options document: container_id, container_name,
# port_mappings (10000+I -> 80/tcp), networks (bench: static IP, interface eth0) and
# network_info (bridge br0, 172.17.0.0/16 via 172.17.0.1, dns_enabled false, no IPv6). Podman
# allocates the address itself and passes it as a static IP; here it is 172.17.x.y for cI like
# the other peers. The namespace is created by `ip netns add` (podman's job). netavark's
# firewall driver is iptables (no firewalld in the sandbox).
#
#   firewall_peer_netavark.sh setup N          containers c1..cN (the first setup creates br0)
#   firewall_peer_netavark.sh add FIRST [LAST] containers FIRST..LAST
#   firewall_peer_netavark.sh teardown N       remove containers c1..cN
#
# JSON is written per container (printf, no helper process) into $NETAVARK_CONF_DIR (default
# /run/fwbench/netavark), which is also netavark's --config directory. $NETAVARK overrides the
# binary (default /usr/lib/podman/netavark). /etc/netns/cI/{hosts,resolv.conf} are written like
# the other peers do (podman's job).
#
# ONLY run this inside a throwaway sandbox (benchmarks/firewall_run.py does).
set -eu
. "${0%/*}/peer_lib.sh"  # no dirname process: the task counts are part of the result

NETAVARK=${NETAVARK:-/usr/lib/podman/netavark}
CONF=${NETAVARK_CONF_DIR:-/run/fwbench/netavark}
[[ -d $CONF ]] || mkdir -p "$CONF"
NETWORK_ID=2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9

options() {  # $1 = I, $2 = address
    local id
    printf -v id '%064x' "$1"
    printf '{"container_id":"%s","container_name":"c%d",' "$id" "$1"
    printf '"port_mappings":[{"host_ip":"","container_port":80,"host_port":%d,"range":1,"protocol":"tcp"}],' $((10000 + $1))
    printf '"networks":{"bench":{"static_ips":["%s"],"aliases":["c%d"],"interface_name":"eth0"}},' "$2" "$1"
    printf '"network_info":{"bench":{"name":"bench","id":"%s","driver":"bridge","network_interface":"br0",' "$NETWORK_ID"
    printf '"subnets":[{"subnet":"172.17.0.0/16","gateway":"172.17.0.1"}],"ipv6_enabled":false,'
    printf '"internal":false,"dns_enabled":false,"ipam_options":{"driver":"host-local"}}}}\n'
}

add_one() {  # $1 = I
    names "$1"
    ip netns add "$ns"
    options "$1" "$addr" > "$CONF/$ns.json"
    "$NETAVARK" --config "$CONF" setup "/run/netns/$ns" < "$CONF/$ns.json" > /dev/null
    etc_files "$addr" "$ns"
}

remove_one() {  # $1 = I
    local ns=c$1
    "$NETAVARK" --config "$CONF" teardown "/run/netns/$ns" < "$CONF/$ns.json" > /dev/null
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns" "$CONF/$ns.json"
}

peer_main "usage: firewall_peer_netavark.sh setup N | add FIRST [LAST] | teardown N" "$@"
