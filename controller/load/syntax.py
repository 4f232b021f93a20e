"""The micro-syntax of strings (ports, addresses, links, DNS names): each parser takes what
the user wrote and raises ValueError with a message for them."""

from __future__ import annotations

import functools
import ipaddress
import re

from controller.model import (
    IPAddress,
    IPNetwork,
    Link,
    PortSpec,
    Protocol,
)

# --------------------------------------------------------------------------- string syntax
#
# Each parser takes what the user wrote and raises ValueError with a message for them.


_PORT_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")  # not \d: it also matches non-ASCII digits
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def parse_ip(text: str, version: int | None = None) -> IPAddress:
    family = {4: "IPv4 ", 6: "IPv6 "}.get(version or 0, "IP ")
    try:
        address = ipaddress.ip_address(text) if "%" not in text else None
    except ValueError:
        address = None
    if address is None or (version is not None and address.version != version):
        raise ValueError(f"{text!r} is not a valid {family}address")
    return address


def parse_interface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An address with its prefix (`172.26.0.1/16`), as Docker's `bip`."""
    if "/" in text:
        try:
            return ipaddress.ip_interface(text)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not an address with a prefix (e.g. 172.26.0.1/16)")


def parse_subnet(text: str) -> IPNetwork:
    """A CIDR with no host bits set, as Docker requires (`172.28.0.0/16`, not `172.28.5.1/16`)."""
    try:
        network = ipaddress.ip_network(text, strict=False) if "/" in text else None
    except ValueError:
        network = None
    if network is None:
        raise ValueError(f"{text!r} is not a valid subnet in CIDR notation (e.g. 172.28.0.0/16)")
    if str(network) != text and ipaddress.ip_interface(text).ip != network.network_address:
        raise ValueError(f"invalid subnet {text}: it should be {network}")
    return network


def parse_port_range(text: str) -> range:
    """`80` or `9000-9002`; every port in 1..65535."""
    match = _PORT_RANGE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a valid port or port range (e.g. 80 or 9000-9002)")
    first = _port_number(match.group(1))
    last = _port_number(match.group(2)) if match.group(2) else first
    if last < first:
        raise ValueError(f"invalid port range {text}: {first} is greater than {last}")
    return range(first, last + 1)


def _port_number(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    if len(significant) > 5 or int(significant) > 65535:  # check length first: int() of huge strings fails
        raise ValueError(f"{significant} is greater than the maximum of 65535")
    if significant == "0":
        raise ValueError("0 is less than the minimum of 1")
    return int(significant)


def parse_protocol(text: str) -> Protocol:
    try:
        return Protocol(text)
    except ValueError:
        raise ValueError(f"unknown protocol {text!r}: expected tcp, udp or sctp") from None


@functools.lru_cache(maxsize=65536)  # validation and build both parse each of 1,000 ports
def parse_port_mapping(text: str) -> tuple[PortSpec, ...]:
    """Docker's `-p`: `[[hostIP:]hostPort:]containerPort[/protocol]`, ports or ranges.

    `[::1]:8080:80` brackets an IPv6 host IP. Ranges expand to one PortSpec per port and
    must have the same length on both sides. A host port is required (for now).
    """
    mapping, slash, proto = text.partition("/")
    protocol = parse_protocol(proto) if slash else Protocol.TCP
    host_ip, host, container = _split_mapping(mapping, text)
    container_ports = parse_port_range(container)
    if not host:
        raise ValueError(
            f'{text!r} has no host port: a host port is required (e.g. "{container_ports[0]}:{container}")'
        )
    host_ports = parse_port_range(host)
    if len(host_ports) != len(container_ports):
        raise ValueError(
            f"host port range {host} and container port range {container} must have the same length"
        )
    return tuple(PortSpec(c, h, host_ip, protocol) for h, c in zip(host_ports, container_ports, strict=True))


def _split_mapping(mapping: str, text: str) -> tuple[str | None, str, str]:
    """-> (host IP or None, host port text or "", container port text)."""
    if mapping.startswith("["):
        address, bracket, rest = mapping[1:].partition("]")
        parts = rest.split(":")
        if not bracket or len(parts) != 3 or parts[0]:
            raise ValueError(f"{text!r} is not a valid port mapping (e.g. [::1]:8080:80)")
        return str(parse_ip(address)), parts[1], parts[2]
    parts = mapping.split(":")
    if len(parts) > 3:
        raise ValueError(f"{text!r}: write an IPv6 host IP in brackets, e.g. [::1]:8080:80")
    if len(parts) == 3:
        host_ip = str(parse_ip(parts[0])) if parts[0] else None
        return host_ip, parts[1], parts[2]
    return (None, parts[0], parts[1]) if len(parts) == 2 else (None, "", parts[0])


def parse_exposed(text: str) -> list[tuple[int, Protocol]]:
    """`80`, `53/udp`, `8000-8010/tcp`."""
    ports, slash, proto = text.partition("/")
    protocol = parse_protocol(proto) if slash else Protocol.TCP
    return [(port, protocol) for port in parse_port_range(ports)]


def parse_link(text: str) -> Link:
    """`name:alias` or `name` (the alias is then the name)."""
    name, _, alias = text.partition(":")
    alias = alias or name
    if not (_NAME.fullmatch(name) and _NAME.fullmatch(alias)):
        raise ValueError(f'{text!r} is not a valid link: expected "name" or "name:alias"')
    return Link(name, alias)


_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def parse_domain_name(text: str) -> str:
    """A DNS name as resolv.conf and hosts files carry it: no spaces, no `#`, no control bytes;
    dot-separated labels of at most 63 characters (a final dot allowed), 253 in all."""
    labels = text[:-1].split(".") if text.endswith(".") and len(text) > 1 else text.split(".")
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{text!r} is not a valid DNS name: dot-separated labels of letters, digits, '_' "
            "and '-', at most 63 characters each and 253 in all"
        )
    return text


def parse_extra_host(text: str) -> tuple[str, str]:
    """`host:ip`; the IP may be IPv6 (with or without brackets), so split on the first colon."""
    host, colon, address = text.partition(":")
    if not colon or not host or any(ch.isspace() for ch in host):
        raise ValueError(f'{text!r} is not a valid extra host: expected "host:ip"')
    try:
        parse_domain_name(host)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid extra host: {exc}") from None
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    return host, str(parse_ip(address))
