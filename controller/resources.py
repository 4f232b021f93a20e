"""Constructors for resources, shared by drivers (what should be) and observe (what is).

Both sides build keys and attributes here, so that a difference between them is always a
difference in the kernel and never one of spelling.

Keys: `netns:NAME`, `link:NS/IFNAME` (NS empty for the host), `addr:NS/IFNAME/CIDR`,
`route:NS/DST`, `file:PATH`, `sysctl:NS/NAME`, `chain:FAMILY/TABLE/CHAIN`.
"""

from __future__ import annotations

from controller.model import Kind, Resource


def netns_key(name: str) -> str:
    return f"netns:{name}"


def link_key(netns: str | None, ifname: str) -> str:
    return f"link:{netns or ''}/{ifname}"


def addr_key(netns: str | None, ifname: str, cidr: str) -> str:
    return f"addr:{netns or ''}/{ifname}/{cidr}"


def route_key(netns: str | None, dst: str) -> str:
    return f"route:{netns or ''}/{dst}"


def file_key(path: str) -> str:
    return f"file:{path}"


def netns(name: str, ipv6: bool = True) -> Resource:
    """`ipv6` False: interfaces created in the namespace start with IPv6 disabled (Docker does
    so when no network of the container has IPv6), so they send no DAD, router solicitations
    or MLD reports that the bridge would flood to every other container."""
    return Resource(Kind.NETNS, netns_key(name), {"name": name, "ipv6": ipv6})


def bridge(name: str, mtu: int, alias: str, mac: str) -> Resource:
    """`mac`: the bridge's own address, fixed (see names.bridge_mac)."""
    return Resource(
        Kind.BRIDGE, link_key(None, name), {"name": name, "mtu": mtu, "up": True, "alias": alias, "mac": mac}
    )


def veth(
    name: str,
    *,
    master: str | None,
    mtu: int,
    alias: str,
    peer_netns: str,
    peer_ifname: str,
    hairpin: bool = False,
) -> Resource:
    """`hairpin`: the bridge may send a frame back out of the port it came in on, which a
    container reaching its own published port through the host's address needs."""
    deps = [netns_key(peer_netns)]
    if master:
        deps.append(link_key(None, master))
    return Resource(
        Kind.VETH,
        link_key(None, name),
        {
            "name": name,
            "master": master,
            "mtu": mtu,
            "up": True,
            "alias": alias,
            "peer_netns": peer_netns,
            "peer_ifname": peer_ifname,
            "hairpin": hairpin,
        },
        deps=tuple(deps),
        # No parent: a namespace's deletion would destroy the veth asynchronously; we delete
        # veths explicitly, all in one netlink message, before their namespaces.
        immutable=frozenset({"peer_netns", "peer_ifname"}),
    )


def nslink(netns_name: str, ifname: str, *, mac: str, mtu: int, host_veth: str) -> Resource:
    """The container end of a veth: created with the veth, configured here."""
    return Resource(
        Kind.NSLINK,
        link_key(netns_name, ifname),
        {"name": ifname, "mac": mac, "mtu": mtu, "up": True},
        deps=(link_key(None, host_veth),),
        netns=netns_name,
        parent=link_key(None, host_veth),
    )


def address(netns_name: str | None, ifname: str, cidr: str) -> Resource:
    return Resource(
        Kind.ADDRESS,
        addr_key(netns_name, ifname, cidr),
        {"dev": ifname, "address": cidr},
        deps=(link_key(netns_name, ifname),),
        netns=netns_name,
        parent=link_key(netns_name, ifname),
    )


def route(netns_name: str | None, dst: str, *, gateway: str, dev: str, via_addr: str) -> Resource:
    return Resource(
        Kind.ROUTE,
        route_key(netns_name, dst),
        {"dst": dst, "gateway": gateway, "dev": dev},
        deps=(link_key(netns_name, dev), addr_key(netns_name, dev, via_addr)),
        netns=netns_name,
        parent=addr_key(netns_name, dev, via_addr),
    )


def file(path: str, content: str, *, deps: tuple[str, ...] = ()) -> Resource:
    return Resource(Kind.FILE, file_key(path), {"path": path, "content": content}, deps=deps)


# Overlay networks (drivers/overlay.py). Each lives in a namespace of its own (not a container's:
# Resource.netns stays None) named in the attributes. Keys: `overlay:NAME`, `fdb:DEV/MAC`,
# `neigh:DEV/IP`; a port's key is `link:/IFNAME`, as a veth's, so that the container end's
# dependencies read the same for both drivers.


def overlay_key(name: str) -> str:
    return f"overlay:{name}"


def overlay(
    name: str, *, bridge: str, vxlan: str, vni: int, port: int, mtu: int, alias: str, mac: str
) -> Resource:
    """An overlay network's namespace `name` with its bridge and its VXLAN device: learning
    off (entries come from the cluster store), ARP proxy on (it answers ARP for remote
    endpoints from its neighbour entries: no flooding)."""
    return Resource(
        Kind.VXLAN,
        overlay_key(name),
        {"netns": name, "bridge": bridge, "vxlan": vxlan, "vni": vni, "port": port,
         "learning": False, "proxy": True, "mtu": mtu, "up": True, "alias": alias, "mac": mac},
        immutable=frozenset({"netns", "bridge", "vxlan", "vni", "port", "learning", "proxy"}),
    )


def ovport(
    name: str, *, overlay: str, master: str, mtu: int, alias: str, peer_netns: str, peer_ifname: str
) -> Resource:
    """A veth from bridge `master` in overlay namespace `overlay` to a container."""
    return Resource(
        Kind.OVPORT,
        link_key(None, name),
        {"name": name, "overlay": overlay, "master": master, "mtu": mtu, "up": True, "alias": alias,
         "peer_netns": peer_netns, "peer_ifname": peer_ifname},
        deps=(netns_key(peer_netns), overlay_key(overlay)),
        parent=overlay_key(overlay),
        immutable=frozenset({"overlay", "peer_netns", "peer_ifname"}),
    )


def fdb_key(dev: str, mac: str) -> str:
    return f"fdb:{dev}/{mac}"


def neigh_key(dev: str, ip: str) -> str:
    return f"neigh:{dev}/{ip}"


def fdb(overlay_name: str, dev: str, mac: str, dst: str) -> Resource:
    return Resource(
        Kind.FDB,
        fdb_key(dev, mac),
        {"overlay": overlay_name, "dev": dev, "mac": mac, "dst": dst},
        deps=(overlay_key(overlay_name),),
        parent=overlay_key(overlay_name),
        immutable=frozenset({"dst"}),
    )


def neigh(overlay_name: str, dev: str, ip: str, mac: str) -> Resource:
    return Resource(
        Kind.NEIGH,
        neigh_key(dev, ip),
        {"overlay": overlay_name, "dev": dev, "ip": ip, "mac": mac},
        deps=(overlay_key(overlay_name),),
        parent=overlay_key(overlay_name),
    )
