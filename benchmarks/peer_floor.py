#!/usr/bin/env python3
"""Peer (b), the floor: the same job as `netctl apply`/`netctl delete` of N containers on one
bridge, as straight-line pyroute2 doing only the kernel work. No spec, no state, no observe,
no plan: a lower bound for any Python netlink tool.

    peer_floor.py setup N      bridge br0 (172.17.0.1/16, up) + containers c1..cN
    peer_floor.py teardown N   remove containers c1..cN (the bridge stays, like docker0)

Namespaces are created in-process like `ip netns add` does (unshare(CLONE_NEWNET), bind-mount
/proc/thread-self/ns/net onto /run/netns/NAME), an IPRoute socket is opened while inside (a
netlink socket stays in the namespace it was created in) and the thread setns()es back: no
helper process per namespace. Teardown moves the host-side veths into one interface group and
deletes the whole group with one RTM_DELLINK (which also removes each eth0 peer), then
unmounts and unlinks the namespace files.

ONLY run this inside a throwaway sandbox (benchmarks/run.py does; or `netctl sandbox --`).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import sys

from pyroute2 import IPRoute

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
NETNS_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"
BRIDGE = "br0"
GATEWAY = "172.17.0.1"
GROUP = 4242  # interface group used to delete all veths with one request

libc = ctypes.CDLL(None, use_errno=True)


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def names(i: int) -> tuple[str, str, str, str]:
    h = i + 1  # c1 -> 172.17.0.2
    return f"c{i}", f"veth{0x5EED0000 + i:08x}", f"172.17.{h >> 8}.{h & 255}", \
        f"02:42:ac:11:{h >> 8:02x}:{h & 255:02x}"


HOSTS_HEAD = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)
RESOLV = "nameserver 127.0.0.11\noptions ndots:0\n"


def make_bridge(ipr: IPRoute) -> int:
    """br0 with the gateway address, up; its index."""
    ipr.link("add", ifname=BRIDGE, kind="bridge")
    br: int = ipr.link_lookup(ifname=BRIDGE)[0]
    ipr.addr("add", index=br, address=GATEWAY, prefixlen=16)
    ipr.link("set", index=br, state="up")
    return br


def add_containers(ipr: IPRoute, br: int, first: int, last: int) -> None:
    """Containers first..last on bridge `br` (also firewall_peer_floor.py's network part)."""
    # One netlink socket per namespace stays open until the last phase (4 fds each).
    count = last - first + 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8 * count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * count + 64), hard))
    os.makedirs(NETNS_DIR, exist_ok=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    # Phase 1: namespaces, lo up. (Phases rather than container after container: with the
    # IPv6 link-local traffic of each new eth0 flooded over the bridge, this is the faster order.)
    inside: dict[int, tuple[IPRoute, int]] = {}
    for i in range(first, last + 1):
        path = f"{NETNS_DIR}/c{i}"
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
        check(libc.unshare(CLONE_NEWNET), "unshare")
        check(libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None), "mount")
        nsfd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        nsr = IPRoute()  # this socket lives in the new namespace
        check(libc.setns(home, CLONE_NEWNET), "setns")
        nsr.link("set", index=1, state="up")
        inside[i] = (nsr, nsfd)
    os.close(home)

    # Phase 2: veth pairs, created with the peer already in its namespace, on the bridge, up.
    for i in range(first, last + 1):
        _, veth, _, mac = names(i)
        nsr, nsfd = inside[i]
        ipr.link("add", ifname=veth, kind="veth", master=br, state="up",
                 peer={"ifname": "eth0", "net_ns_fd": nsfd, "address": mac, "mtu": 1500})
        os.close(nsfd)

    # Phase 3: address, eth0 up, default route (through the in-namespace socket); files.
    for i in range(first, last + 1):
        ns, _, addr, _ = names(i)
        nsr, _ = inside.pop(i)
        eth0 = nsr.link_lookup(ifname="eth0")[0]
        nsr.addr("add", index=eth0, address=addr, prefixlen=16)
        nsr.link("set", index=eth0, state="up")
        nsr.route("add", dst="0.0.0.0/0", gateway=GATEWAY)
        nsr.close()
        os.makedirs(f"{ETC_NETNS}/{ns}", exist_ok=True)
        with open(f"{ETC_NETNS}/{ns}/hosts", "w") as f:
            f.write(f"{HOSTS_HEAD}{addr}\t{ns}\n")
        with open(f"{ETC_NETNS}/{ns}/resolv.conf", "w") as f:
            f.write(RESOLV)


def remove_containers(n: int) -> None:
    """Containers c1..cN: all veths as one interface group, then the namespace files."""
    with IPRoute() as ipr:
        wanted = {names(i)[1] for i in range(1, n + 1)}
        veths = [link["index"] for link in ipr.get_links() if link.get("ifname") in wanted]
        for index in veths:
            ipr.link("set", index=index, group=GROUP)
        if veths:
            ipr.link("del", group=GROUP)
    for i in range(1, n + 1):
        ns = f"c{i}"
        path = f"{NETNS_DIR}/{ns}"
        check(libc.umount2(path.encode(), MNT_DETACH), "umount2")
        os.unlink(path)
        shutil.rmtree(f"{ETC_NETNS}/{ns}", ignore_errors=True)


def setup(n: int) -> None:
    with IPRoute() as ipr:
        add_containers(ipr, make_bridge(ipr), 1, n)


def teardown(n: int) -> None:
    remove_containers(n)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("setup", "teardown"):
        print("usage: peer_floor.py setup|teardown N", file=sys.stderr)
        return 2
    (setup if argv[0] == "setup" else teardown)(int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
