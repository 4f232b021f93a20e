#!/bin/bash
# Firewall benchmark, peer "cni": containers on one bridge, each publishing one TCP port, with
# the reference CNI plugins invoked directly, the way a CNI runtime (containerd, CRI-O, podman
# 3) runs a conflist: for container cI, `loopback` on lo, then the chain `bridge` (bridge br0,
# isGateway, ipMasq, hairpinMode; IPAM by `host-local` on 172.17.0.0/16 with a default route)
# and `portmap` (runtimeConfig.portMappings = 10000+I -> 80/tcp, prevResult = bridge's
# result). Teardown runs DEL in reverse order with the same configuration. The namespace is
# created by `ip netns add` (the runtime's job; the plugins only get CNI_NETNS).
#
#   firewall_peer_cni.sh setup N          containers c1..cN (the first ADD creates br0)
#   firewall_peer_cni.sh add FIRST [LAST] containers FIRST..LAST
#   firewall_peer_cni.sh teardown N       remove containers c1..cN
#
# JSON configurations are written per container (printf, no helper process) into $CNI_CONF_DIR
# (default /run/fwbench/cni). Plugins are found in $CNI_PATH (default /usr/lib/cni); host-local
# keeps its leases in /var/lib/cni/networks/bench. /etc/netns/cI/{hosts,resolv.conf} are written
# like the other peers do (the runtime's job too).
#
# ONLY run this inside a throwaway sandbox (benchmarks/firewall_run.py does).
set -eu
. "${0%/*}/peer_lib.sh"  # no dirname process: the task counts are part of the result

export CNI_PATH=${CNI_PATH:-/usr/lib/cni}
CONF=${CNI_CONF_DIR:-/run/fwbench/cni}
[[ -d $CONF ]] || mkdir -p "$CONF"
export CNI_IFNAME=eth0

LOOPBACK='{"cniVersion":"1.0.0","name":"lo","type":"loopback"}'
BRIDGE_CONF='{"cniVersion":"1.0.0","name":"bench","type":"bridge","bridge":"br0","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"172.17.0.0/16","gateway":"172.17.0.1"}]],"routes":[{"dst":"0.0.0.0/0"}]}}'

portmap_conf() {  # $1 = I, $2 = prevResult JSON (or empty)
    printf '{"cniVersion":"1.0.0","name":"bench","type":"portmap","capabilities":{"portMappings":true},"snat":true,"runtimeConfig":{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp"}]}%s}\n' \
        $((10000 + $1)) "${2:+,\"prevResult\":$2}"
}

add_one() {  # $1 = I
    local ns=c$1 result line addr=
    ip netns add "$ns"
    export CNI_CONTAINERID=bench-$ns CNI_NETNS=/run/netns/$ns CNI_COMMAND=ADD
    printf '%s\n' "$LOOPBACK" > "$CONF/$ns-lo.json"
    CNI_IFNAME=lo "$CNI_PATH/loopback" < "$CONF/$ns-lo.json" > /dev/null
    printf '%s\n' "$BRIDGE_CONF" > "$CONF/$ns-bridge.json"
    "$CNI_PATH/bridge" < "$CONF/$ns-bridge.json" > "$CONF/$ns-result.json"
    # the result, without a helper process: read -d '' stops at EOF (status 1)
    IFS= read -r -d '' result < "$CONF/$ns-result.json" || true
    portmap_conf "$1" "$result" > "$CONF/$ns-portmap.json"
    "$CNI_PATH/portmap" < "$CONF/$ns-portmap.json" > /dev/null
    while IFS= read -r line; do  # "address": "172.17.0.2/16",
        if [[ $line == *'"address"'* ]]; then addr=${line#*: \"}; addr=${addr%%/*}; break; fi
    done < "$CONF/$ns-result.json"
    etc_files "$addr" "$ns"
}

remove_one() {  # $1 = I: DEL in reverse order, with the same configuration
    local ns=c$1 result
    export CNI_CONTAINERID=bench-$ns CNI_NETNS=/run/netns/$ns CNI_COMMAND=DEL
    IFS= read -r -d '' result < "$CONF/$ns-result.json" || true
    portmap_conf "$1" "$result" > "$CONF/$ns-portmap.json"
    "$CNI_PATH/portmap" < "$CONF/$ns-portmap.json" > /dev/null
    "$CNI_PATH/bridge" < "$CONF/$ns-bridge.json" > /dev/null
    CNI_IFNAME=lo "$CNI_PATH/loopback" < "$CONF/$ns-lo.json" > /dev/null
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns" "$CONF/$ns-"*.json
}

peer_main "usage: firewall_peer_cni.sh setup N | add FIRST [LAST] | teardown N" "$@"
