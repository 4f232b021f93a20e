"""Kernel -> Observed: read what netctl owns, and the host facts that resolve needs.

`containers` names the namespaces netctl owns (from the store and the target); nothing else
is read as ours. Observation can be limited to some namespaces (`only`), e.g. to verify
what an apply touched without re-reading a thousand containers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import replace

from controller import etcfiles, hostconfig, names, resources
from controller.kernel import netns, rtdump
from controller.kernel.netns import Sockets
from controller.model import IPNetwork, Kind, Observed, Resource
from controller.observe import files, firewall, netlink, overlay
from controller.resolve import HostFacts

HOST_RESOLV_CONF = "/etc/resolv.conf"


def observe(
    sockets: Sockets, containers: Collection[str], sysctls: Collection[str] = (), rules: bool = True
) -> Observed:
    """`sysctls`: the names the target sets (only those are read: the rest are the host's).
    `rules`: read the firewall (its backend's tools); verify skips it when nothing changed it."""
    root = rtdump.dump(None, routes=False, bridge_ports=True)
    bridges = netlink.host_links(root)
    out: list[Resource] = list(bridges)
    bridge_names = {r.attrs["name"] for r in bridges}
    out.extend(
        netlink.addresses(root, None, {i: ln.name for i, ln in root.links.items() if ln.name in bridge_names})
    )
    present = set(netns.list_names())
    peers: dict[int, tuple[str, str]] = {}
    inner: list[Resource] = []
    for name in sorted(set(containers) & present):
        out.append(resources.netns(name, ipv6=netns.ipv6_enabled(name)))
        found, found_peers = netlink.container(name)
        inner.extend(found)
        peers.update(found_peers)
    veths = netlink.host_veths(root, peers)
    out.extend(veths)
    ports: list[Resource] = []
    if overlay.namespaces():  # overlay networks live in namespaces of their own
        found_overlays = overlay.observe(sockets)
        ports = [r for r in found_overlays if r.kind is Kind.OVPORT]
        out.extend(found_overlays)
    out.extend(_join_container_ends(inner, [*veths, *ports]))
    out.extend(files.container_files(containers))
    if rules:
        out.extend(firewall.rules())
    out.extend(firewall.sysctls(sysctls))
    return Observed(tuple(out))


def _join_container_ends(inner: list[Resource], veths: list[Resource]) -> list[Resource]:
    """A container end's parent is its host veth, known only once both sides are read."""
    host_of = {(v.attrs["peer_netns"], v.attrs["peer_ifname"]): v.attrs["name"] for v in veths}
    out = []
    for r in inner:
        if r.kind is Kind.NSLINK:
            assert r.netns is not None
            host = host_of.get((r.netns, r.attrs["name"]))
            parent = resources.link_key(None, host) if host else resources.netns_key(r.netns)
            r = replace(r, deps=(parent,), parent=parent)
        out.append(r)
    return out


def host_facts(sockets: Sockets) -> HostFacts:
    """Routes already on the host (pool subnets must avoid them, except routes on our own
    bridges) and the host's resolvers."""
    found = rtdump.dump(None)
    ours = {i for i, link in found.links.items() if names.is_owned_alias(link.alias)}
    routes: list[IPNetwork] = [
        ipaddress.ip_network(f"{r.dst}/{r.dst_len}", strict=False)
        for r in found.routes
        if r.dst and r.dst_len and r.oif not in ours
    ]
    try:
        with open(HOST_RESOLV_CONF, encoding="utf-8") as f:
            servers, search, options = etcfiles.host_resolvers(f.read())
    except OSError:
        servers, search, options = (), (), ()
    config = hostconfig.current()
    return HostFacts(tuple(routes), servers, search, options, config.pools, config.accept_fwmark)
