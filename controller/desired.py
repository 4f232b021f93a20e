"""Target -> the resources that should exist in the kernel (pure).

Networks map to resources through their driver; every container with its own namespace
gets the namespace, the container end of each endpoint with its addresses, a default route
via its first network's gateway, and its hosts and resolv.conf files.
"""

from __future__ import annotations

from controller import drivers, etcfiles, resources
from controller.firewall.wanted import DEFAULT, firewall_resources
from controller.model import ContainerTarget, Resource, Target


def desired_resources(target: Target, firewall: str = DEFAULT) -> tuple[Resource, ...]:
    """`firewall`: the firewall backend whose resources are wanted (firewall/wanted.py)."""
    out: list[Resource] = []
    by_network = {n.name: n for n in target.networks}
    for network in target.networks:
        driver = drivers.get(network.driver)
        out.extend(driver.network_resources(network, target.endpoints(network.name)))
    for container in target.containers:
        if container.netns is None:
            continue
        ipv6 = any(ep.ipv6 is not None for ep in container.endpoints)
        out.append(resources.netns(container.netns, ipv6=ipv6))
        for ep in container.endpoints:
            out.extend(drivers.get(by_network[ep.network].driver).endpoint_resources(
                by_network[ep.network], ep
            ))
        out.extend(_inside(container))
        out.extend(_files(container, target))
    out.extend(firewall_resources(target, firewall))
    return tuple(out)


def _inside(container: ContainerTarget) -> list[Resource]:
    """The container's end of each endpoint: interface, addresses, default routes."""
    ns = container.netns
    assert ns is not None
    out: list[Resource] = []
    default4 = default6 = False
    for ep in container.endpoints:
        out.append(resources.nslink(ns, ep.ifname, mac=ep.mac, mtu=ep.mtu, host_veth=ep.host_ifname))
        for iface in (ep.ipv4, ep.ipv6):
            if iface is not None:
                out.append(resources.address(ns, ep.ifname, str(iface)))
        if ep.gateway4 is not None and ep.ipv4 is not None and not default4:
            default4 = True
            out.append(resources.route(
                ns, "default", gateway=str(ep.gateway4), dev=ep.ifname, via_addr=str(ep.ipv4)
            ))
        if ep.gateway6 is not None and ep.ipv6 is not None and not default6:
            default6 = True
            out.append(resources.route(
                ns, "default6", gateway=str(ep.gateway6), dev=ep.ifname, via_addr=str(ep.ipv6)
            ))
    return out


def _files(container: ContainerTarget, target: Target) -> list[Resource]:
    embedded = uses_embedded_dns(container, target)
    return [
        resources.file(etcfiles.hosts_path(container.name), etcfiles.render_hosts(container, target)),
        resources.file(
            etcfiles.resolv_path(container.name),
            etcfiles.render_resolv(container, target, embedded),
        ),
    ]


def uses_embedded_dns(container: ContainerTarget, target: Target) -> bool:
    """Docker's rule: a container with its own namespace and an endpoint on a user-defined
    (non-builtin) network uses the embedded DNS server at 127.0.0.11; containers only on the
    default bridge get the host's resolvers and no discovery (controller/dns/ serves it)."""
    if container.netns is None:
        return False
    builtin = {n.name for n in target.networks if n.builtin}
    return any(ep.network not in builtin for ep in container.endpoints)
