# Shared by the shell peers (peer_shell.sh, firewall_peer_*.sh), sourced: no process of its own.
# A peer defines add_one I and remove_one I (and base, run once by `setup`), then calls
# peer_main "$@" with its usage line.

BRIDGE=br0
GATEWAY=172.17.0.1

names() {  # $1 = I -> ns, addr, mac, veth, port
    local h=$(($1 + 1))                                # c1 -> 172.17.0.2
    ns=c$1
    addr=172.17.$((h >> 8)).$((h & 255))
    printf -v mac '02:42:ac:11:%02x:%02x' $((h >> 8)) $((h & 255))
    printf -v veth 'veth%08x' $((0x5eed0000 + $1))
    port=$((10000 + $1))
}

etc_files() {  # $1 = address, $2 = name: /etc/netns/NAME/{hosts,resolv.conf}, the runtime's job
    mkdir -p "/etc/netns/$2"
    {
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
        printf 'fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n'
        printf '%s\t%s\n' "$1" "$2"
    } > "/etc/netns/$2/hosts"
    printf 'nameserver 127.0.0.11\noptions ndots:0\n' > "/etc/netns/$2/resolv.conf"
}

ip_container() {  # after names I: the container by hand, one `ip` command per step
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$BRIDGE"
    ip link set "$veth" up
    ip netns exec "$ns" ip link set eth0 address "$mac" mtu 1500
    ip netns exec "$ns" ip addr add "$addr/16" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip route add default via "$GATEWAY"
    etc_files "$addr" "$ns"
}

ip_bridge() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/16" dev "$BRIDGE"
    ip link set "$BRIDGE" up
}

peer_main() {  # $1 = usage, then: setup N | add FIRST [LAST] | teardown N
    local usage=$1 i
    shift
    case "${1:-}" in
    setup)
        if declare -F base > /dev/null; then base; fi
        for ((i = 1; i <= ${2:?N}; i++)); do add_one "$i"; done
        ;;
    add)
        for ((i = ${2:?FIRST}; i <= ${3:-$2}; i++)); do add_one "$i"; done
        ;;
    teardown)
        for ((i = 1; i <= ${2:?N}; i++)); do remove_one "$i"; done
        ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
    esac
}
