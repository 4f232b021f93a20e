"""The checks that need every document: names, subnets, addresses, links, published ports."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from controller import drivers, names, options, yamlsource
from controller.errors import Problem
from controller.load.build import _accepted_networks, _Container, _Network, _predefined
from controller.load.common import (
    IPV6_MIN_MTU,
    _exclusive,
)
from controller.load.problems import _did_you_mean, _place, _problem
from controller.load.syntax import parse_ip
from controller.model import (
    Document,
    IPAddress,
    IPAMConfig,
    IPNetwork,
    PortSpec,
    Protocol,
)

# --------------------------------------------------------------------------- checks across documents


def _check_all(networks: list[_Network], containers: list[_Container]) -> Iterator[Problem]:
    yield from _check_predefined(networks)
    accepted = _accepted_networks(networks)
    yield from _check_duplicates(accepted)
    yield from _check_duplicates(containers)
    by_name = {n.spec.name: n for n in reversed(accepted)}  # the first definition wins
    for network in accepted:
        yield from _check_network(network)
    yield from _check_subnet_overlaps(accepted)
    yield from _check_bridge_names(accepted)
    for container in containers:
        yield from _check_attachments(container, by_name)
    yield from _check_static_addresses(containers, by_name)
    yield from _check_links(containers, by_name)
    yield from _check_ports(containers, by_name)


def _check_predefined(networks: list[_Network]) -> Iterator[Problem]:
    predefined = _predefined(networks)
    for n in networks:
        if n.spec.builtin:
            continue
        if n.spec.name in predefined:
            yield _problem(
                n.doc, "metadata.name", f"{n.spec.name} is a pre-defined network and cannot be redefined"
            )
        elif _exclusive(n.spec.driver):
            yield _problem(n.doc, "spec.driver", f"only one instance of {n.spec.driver!r} network is allowed")


def _check_duplicates(objects: Sequence[_Network | _Container]) -> Iterator[Problem]:
    first: dict[str, Document] = {}
    for obj in objects:
        earlier = first.setdefault(obj.spec.name, obj.doc)
        if earlier is not obj.doc:
            yield _problem(
                obj.doc,
                "metadata.name",
                f"duplicate {obj.doc.kind} {obj.spec.name!r}: already defined at {earlier.source}",
            )


def _check_network(n: _Network) -> Iterator[Problem]:
    if drivers.policy(n.spec.driver) is None:
        yield _problem(n.doc, "spec.driver", drivers.unknown_driver_message(n.spec.driver))
        return
    for j, config in enumerate(n.spec.ipam):
        yield from _check_ipam_config(n, j, config)
    families = {ipaddress.ip_network(c.subnet).version for c in n.spec.ipam if c.subnet}
    if n.spec.enable_ipv6 and 6 not in families:
        yield _problem(n.doc, "spec.enableIPv6", "enableIPv6 requires an IPv6 subnet in ipam.config")
    yield from _check_options(n)


def _check_ipam_config(n: _Network, j: int, config: IPAMConfig) -> Iterator[Problem]:
    base = f"spec.ipam.config[{j}]"
    if config.subnet is None:
        if config.gateway or config.ip_range or config.aux_addresses:
            yield _problem(n.doc, base, "gateway, ipRange and auxAddresses need a subnet in the same entry")
        return
    subnet = ipaddress.ip_network(config.subnet)
    problem = _subnet_problem(subnet)
    if problem:
        yield _problem(n.doc, f"{base}.subnet", problem)
        return
    if subnet.version == 6 and not n.spec.enable_ipv6:
        yield _problem(n.doc, f"{base}.subnet", f"IPv6 subnet {subnet} requires enableIPv6: true")
    if config.gateway and ipaddress.ip_address(config.gateway) not in subnet:
        yield _problem(n.doc, f"{base}.gateway", f"gateway {config.gateway} is not in subnet {subnet}")
    if config.ip_range:
        ip_range = ipaddress.ip_network(config.ip_range)
        if not _inside(ip_range, subnet):
            yield _problem(n.doc, f"{base}.ipRange", f"ipRange {ip_range} is not inside subnet {subnet}")
    for name, address in config.aux_addresses.items():
        if ipaddress.ip_address(address) not in subnet:
            path = yamlsource.child_path(f"{base}.auxAddresses", name)
            yield _problem(n.doc, path, f"auxAddress {name} ({address}) is not in subnet {subnet}")


# Ranges a network cannot take: the host would route them to a bridge (loopback, "this
# network"), they are not unicast (multicast, 240/4 and the limited broadcast), or they are
# the host's own (IPv6 link-local, v4-mapped).
_FORBIDDEN_SUBNETS = {
    ipaddress.ip_network(text): why
    for text, why in [
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4, with 255.255.255.255)"),
        ("::/127", "the unspecified and loopback addresses (::, ::1)"),
        ("::ffff:0:0/96", "IPv4-mapped (::ffff:0:0/96)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("ff00::/8", "multicast (ff00::/8)"),
    ]
}
# A gateway and at least one container: /30 (IPv4), /126 (IPv6) at the smallest.
_LONGEST_PREFIX = {4: 30, 6: 126}


def _subnet_problem(subnet: IPNetwork) -> str | None:
    for forbidden, why in _FORBIDDEN_SUBNETS.items():
        if subnet.version == forbidden.version and subnet.overlaps(forbidden):
            return f"subnet {subnet} overlaps {why}: it cannot be a container network"
    longest = _LONGEST_PREFIX[subnet.version]
    if subnet.prefixlen > longest:
        return (f"subnet {subnet} is too small: a network needs room for a gateway and a "
                f"container (/{longest} at the smallest)")
    return None


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    return (
        inner.version == outer.version
        and int(outer.network_address) <= int(inner.network_address)
        and int(inner.broadcast_address) <= int(outer.broadcast_address)
    )


def _check_options(n: _Network) -> Iterator[Problem]:
    opts = n.spec.options

    def path(key: str) -> str:
        return yamlsource.child_path("spec.options", key)

    if options.BRIDGE_NAME in opts:
        # netctl's own documents (the default networks, the overlay driver's gateway bridge)
        # may use the names netctl gives its devices
        own = n.spec.builtin or n.doc.source.file.startswith("netctl:")
        problem = names.interface_name_problem(opts[options.BRIDGE_NAME], generated_ok=own)
        if problem:
            yield _problem(n.doc, path(options.BRIDGE_NAME), problem)
    if options.MTU in opts:
        mtu = opts[options.MTU]
        if not (re.fullmatch(r"[0-9]{1,6}", mtu) and 68 <= int(mtu) <= 65535):
            message = f"MTU must be an integer between 68 and 65535, got {mtu!r}"
            yield _problem(n.doc, path(options.MTU), message)
        elif n.spec.enable_ipv6 and int(mtu) < IPV6_MIN_MTU:
            message = f"IPv6 needs an MTU of at least {IPV6_MIN_MTU}, got {mtu}"
            yield _problem(n.doc, path(options.MTU), message)
    for key in (options.ICC, options.MASQUERADE, options.DEFAULT_BRIDGE):
        if key in opts and opts[key].lower() not in options.BOOL_WORDS:
            yield _problem(n.doc, path(key), f"must be true or false, got {opts[key]!r}")
    if options.HOST_BINDING_IPV4 in opts:
        try:
            parse_ip(opts[options.HOST_BINDING_IPV4], version=4)
        except ValueError as exc:
            yield _problem(n.doc, path(options.HOST_BINDING_IPV4), str(exc))


def _check_subnet_overlaps(networks: list[_Network]) -> Iterator[Problem]:
    seen: list[tuple[IPNetwork, _Network, str]] = []
    for n in networks:
        for j, config in enumerate(n.spec.ipam):
            if config.subnet is None:
                continue
            subnet, path = ipaddress.ip_network(config.subnet), f"spec.ipam.config[{j}].subnet"
            for other, owner, other_path in seen:
                if subnet.overlaps(other):
                    yield _problem(
                        n.doc,
                        path,
                        f"subnet {subnet} overlaps with subnet {other} of network "
                        f"{owner.spec.name} ({_place(owner.doc, other_path)})",
                    )
            seen.append((subnet, n, path))


def _check_bridge_names(networks: list[_Network]) -> Iterator[Problem]:
    owners: dict[str, _Network] = {}
    for n in networks:
        name = n.spec.options.get(options.BRIDGE_NAME)
        if name is None:
            continue
        owner = owners.setdefault(name, n)
        if owner is not n:
            where = _place(owner.doc, yamlsource.child_path("spec.options", options.BRIDGE_NAME))
            yield _problem(
                n.doc,
                yamlsource.child_path("spec.options", options.BRIDGE_NAME),
                f"bridge name {name!r} is already used by network {owner.spec.name} ({where})",
            )


def _is_default_bridge(n: _Network) -> bool:
    return n.spec.builtin and options.is_true(n.spec.options.get(options.DEFAULT_BRIDGE), False)


def _check_attachments(c: _Container, networks: Mapping[str, _Network]) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, attachment in enumerate(c.spec.networks):
        path, name = f"spec.networks[{i}]", attachment.network
        if name in seen:
            yield _problem(c.doc, path, f"network {name} is listed twice (also spec.networks[{seen[name]}])")
        seen.setdefault(name, i)
        network = networks.get(name)
        if network is None:
            yield _problem(c.doc, path, f"network {name} not found{_did_you_mean(name, networks)}")
        elif attachment.aliases and _is_default_bridge(network):
            yield _problem(
                c.doc,
                f"{path}.aliases",
                "network-scoped alias is supported only for containers in user defined networks",
            )
        elif _exclusive(network.spec.driver) and len(c.spec.networks) > 1:
            yield _problem(
                c.doc,
                "spec.networks",
                f"a container on network {name} cannot be connected to other networks",
            )


def _check_static_addresses(
    containers: list[_Container], networks: Mapping[str, _Network]
) -> Iterator[Problem]:
    taken: dict[tuple[str, IPAddress], tuple[_Container, str]] = {}
    for c in containers:
        for i, attachment in enumerate(c.spec.networks):
            network = networks.get(attachment.network)
            if network is None:
                continue  # reported by _check_attachments
            addresses = {"ipv4Address": attachment.ipv4_address, "ipv6Address": attachment.ipv6_address}
            for key, text in addresses.items():
                if text is None:
                    continue
                path = f"spec.networks[{i}].{key}"
                address = ipaddress.ip_address(text)
                problem = _static_address_problem(network, address)
                if problem is None:
                    holder = taken.setdefault((network.spec.name, address), (c, path))
                    if holder[0] is not c or holder[1] != path:
                        problem = (
                            f"address {address} on network {network.spec.name} is already assigned "
                            f"to container {holder[0].spec.name} ({_place(holder[0].doc, holder[1])})"
                        )
                if problem:
                    yield _problem(c.doc, path, problem)


def _static_address_problem(n: _Network, address: IPAddress) -> str | None:
    """Why `address` cannot be a container's static address on `n` (Docker's rules)."""
    name = n.spec.name
    if _is_default_bridge(n):
        return "user specified IP address is supported on user defined networks only"
    if address.version == 6 and not n.spec.enable_ipv6:
        return f"an IPv6 address needs enableIPv6: true on network {name}"
    configs = [
        c for c in n.spec.ipam if c.subnet and ipaddress.ip_network(c.subnet).version == address.version
    ]
    if not configs:
        return (
            "user specified IP address is supported only when connecting to networks "
            "with user configured subnets"
        )
    config = next((c for c in configs if address in ipaddress.ip_network(c.subnet or "")), None)
    if config is None:
        return f"no configured subnet or ip-range contain the IP address {address}"
    # ipRange limits dynamic allocation only (Docker): a static address may sit outside it,
    # which is how people keep static and dynamic addresses apart.
    subnet = ipaddress.ip_network(config.subnet or "")
    if address == _gateway(n, config, subnet):
        return f"address {address} is the gateway of network {name}"
    for aux_name, aux in config.aux_addresses.items():
        if address == ipaddress.ip_address(aux):
            return f"address {address} is reserved as auxAddress {aux_name} of network {name}"
    if address == subnet.network_address or (
        subnet.version == 4 and subnet.prefixlen < 31 and address == subnet.broadcast_address
    ):
        return f"address {address} is not usable: it is the network or broadcast address of {subnet}"
    return None


def _gateway(n: _Network, config: IPAMConfig, subnet: IPNetwork) -> IPAddress | None:
    """The explicit gateway, else the one a bridge takes by default (the first address)."""
    if config.gateway:
        return ipaddress.ip_address(config.gateway)
    d = drivers.policy(n.spec.driver)
    if d is not None and d.routed and subnet.num_addresses > 2:
        return subnet.network_address + 1
    return None


def _check_links(containers: list[_Container], networks: Mapping[str, _Network]) -> Iterator[Problem]:
    names = {c.spec.name for c in containers}
    for c in containers:
        on_host = any(
            (n := networks.get(a.network)) is not None and (d := drivers.policy(n.spec.driver)) is not None
            and d.host_namespace for a in c.spec.networks
        )
        for i, link in enumerate(c.spec.links):
            path = f"spec.links[{i}]"
            if on_host:
                message = "conflicting options: host type networking can't be used with links"
                yield _problem(c.doc, path, message)
            elif link.container == c.spec.name:
                yield _problem(c.doc, path, "a container cannot link to itself")
            elif link.container not in names:
                hint = _did_you_mean(link.container, names)
                yield _problem(c.doc, path, f"link to unknown container {link.container}{hint}")


# One published host port: the addresses it binds, and where it was written.
@dataclass(frozen=True)
class _Binding:
    addresses: tuple[IPAddress, ...]
    port: int
    protocol: Protocol
    container: _Container
    item: int

    def clashes(self, other: _Binding) -> bool:
        return any(_addresses_overlap(a, b) for a in self.addresses for b in other.addresses)

    def describe(self, address: IPAddress) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{host}:{self.port}/{self.protocol.value}"


def _addresses_overlap(a: IPAddress, b: IPAddress) -> bool:
    """0.0.0.0 takes the port on every IPv4 address, :: on every IPv6 address."""
    return a.version == b.version and (a == b or a.is_unspecified or b.is_unspecified)


def _check_ports(containers: list[_Container], networks: Mapping[str, _Network]) -> Iterator[Problem]:
    bindings: dict[tuple[int, Protocol], list[_Binding]] = {}
    reported: set[tuple[int, int, int, int]] = set()  # (container, item) pairs, once per pair
    for c in containers:
        if not c.spec.ports:
            continue
        nets = [n for a in c.spec.networks if (n := networks.get(a.network)) is not None]
        problem = _publish_problem(nets)
        if problem:
            yield _problem(c.doc, "spec.ports", problem)
            continue
        for port, item in zip(c.spec.ports, c.port_items, strict=True):
            assert port.host_port is not None  # load requires host ports
            binding = _Binding(_bind_addresses(port, nets), port.host_port, port.protocol, c, item)
            same_port = bindings.setdefault((binding.port, binding.protocol), [])
            for other in same_port:
                pair = (id(c), item, id(other.container), other.item)
                if binding.clashes(other) and pair not in reported:
                    reported.add(pair)
                    yield _port_conflict(binding, other)
            same_port.append(binding)


def _publish_problem(nets: list[_Network]) -> str | None:
    for n in nets:
        if _exclusive(n.spec.driver):
            return f"cannot publish ports on network {n.spec.name} (driver {n.spec.driver})"
    if nets and all(n.spec.internal for n in nets):
        return "cannot publish ports on an internal network"
    return None


def _bind_addresses(port: PortSpec, nets: list[_Network]) -> tuple[IPAddress, ...]:
    """Where a published port listens: its host IP, else the network's host_binding_ipv4,
    else every address of both families (Docker binds 0.0.0.0 and ::)."""
    if port.host_ip:
        return (_address(port.host_ip),)
    gateway_net = next((n for n in nets if not n.spec.internal), None)
    binding = gateway_net.spec.options.get(options.HOST_BINDING_IPV4) if gateway_net else None
    if binding and binding != "0.0.0.0":
        try:
            return (parse_ip(binding, version=4),)
        except ValueError:
            pass  # reported by _check_options
    return _EVERY_ADDRESS


_EVERY_ADDRESS = (ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv6Address("::"))
_address = functools.lru_cache(maxsize=4096)(ipaddress.ip_address)  # one host IP for 1,000 ports


def _port_conflict(binding: _Binding, other: _Binding) -> Problem:
    address = next(a for a in binding.addresses for b in other.addresses if _addresses_overlap(a, b))
    other_path = f"spec.ports[{other.item}]"
    return _problem(
        binding.container.doc,
        f"spec.ports[{binding.item}]",
        f"host port {binding.describe(address)} is already published by container "
        f"{other.container.spec.name} ({_place(other.container.doc, other_path)} {other_path})",
    )
