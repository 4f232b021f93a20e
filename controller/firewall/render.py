"""Target -> the firewall netctl wants: chains, jumps and sysctls (pure).

Docker's bridge-driver semantics (Docker 28, userland proxy off), in netctl's own chains:

filter  FORWARD -> NETCTL-USER (the user's, never flushed), NETCTL-FORWARD:
          replies to our bridges        -o BR ctstate RELATED,ESTABLISHED ACCEPT
          published ports and links     -o BR -> NETCTL-IN-<net>   (per network)
          isolation                     -> NETCTL-ISOLATION-STAGE-1 -> STAGE-2
          inter-container (ICC)         -i BR -o BR ACCEPT | DROP
          way out                       -i BR ! -o BR ACCEPT       (not internal)
          anything else into a bridge   -o BR DROP
nat     PREROUTING/OUTPUT (local dst) -> NETCTL -> NETCTL-DNAT-<net>: published ports
        POSTROUTING -> NETCTL-POSTROUTING: masquerade, host-to-container (127.0.0.1), hairpin
raw     PREROUTING -> NETCTL-RAW: nothing from a bridge to the host's loopback (route_localnet
          would let it in: CVE-2020-8558), container addresses only via their bridge, and ports
          bound to 127.0.0.1 only from lo (the holes Docker 28 closed: moby #45610, #41872)

Rules are data (firewall/rules.py); the backend renders them (firewall/iptables.py writes them
exactly as `iptables-save` prints them), so that observed and wanted rules compare as strings.
The nftables backend (firewall/nftables.py) uses the same facts (`bridges`, `published`,
`link_rules`) as set elements instead of rules.
Chains that belong to one network are per network, so that a change to one network or
container patches only the rules that changed.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from controller import drivers, options
from controller.firewall.rules import Rule, Text, chain_of, jump_of
from controller.model import (
    ContainerTarget,
    EndpointTarget,
    Kind,
    NetworkTarget,
    Protocol,
    Resource,
    Target,
)
from controller.names import sysctl_device

USER = "NETCTL-USER"
FORWARD = "NETCTL-FORWARD"
STAGE1 = "NETCTL-ISOLATION-STAGE-1"
STAGE2 = "NETCTL-ISOLATION-STAGE-2"
NAT = "NETCTL"
POSTROUTING = "NETCTL-POSTROUTING"
RAW = "NETCTL-RAW"

FAMILIES = {4: "ipv4", 6: "ipv6"}
LOOPBACK = {4: "127.0.0.0/8", 6: "::1/128"}


def in_chain(net: NetworkTarget) -> str:
    return f"NETCTL-IN-{net.id[:12]}"


def dnat_chain(net: NetworkTarget) -> str:
    return f"NETCTL-DNAT-{net.id[:12]}"


def sysctl_key(name: str) -> str:
    return f"sysctl:/{name}"


def sysctl(name: str, value: str, parent: str | None = None) -> Resource:
    deps = (parent,) if parent else ()
    return Resource(Kind.SYSCTL, sysctl_key(name), {"name": name, "value": value}, deps=deps, parent=parent)


# ---------------------------------------------------------------------------- the ruleset


@dataclass(frozen=True)
class Bridge:
    """What the rules need to know about one bridge network, for one address family."""

    net: NetworkTarget
    device: str
    subnet: str
    icc: bool
    masquerade: bool
    internal: bool


def chains_and_jumps(target: Target, text: Text) -> list[Resource]:
    """The iptables backend's chains and jumps for `target`; `text`: its rendering of a rule."""
    out: list[Resource] = []
    for version, family in FAMILIES.items():
        found = bridges(target, version)
        if found:
            out.extend(_family(target, version, family, found, text))
    return out


def bridges(target: Target, version: int) -> list[Bridge]:
    out = []
    for net in sorted(target.networks, key=lambda n: n.name):
        if not drivers.get(net.driver).firewalled or net.device is None:
            continue
        subnet = next((s.subnet for s in net.subnets if s.subnet.version == version), None)
        if subnet is None or (version == 6 and not net.enable_ipv6):
            continue
        out.append(
            Bridge(
                net=net,
                device=net.device,
                subnet=str(subnet),
                icc=net.option_bool(options.ICC, True),
                masquerade=net.option_bool(options.MASQUERADE, True),
                internal=net.internal,
            )
        )
    return out


def _family(target: Target, version: int, family: str, bridges: list[Bridge], text: Text) -> list[Resource]:
    ports = published(target, version)
    out = [
        chain_of(family, "filter", USER, None, text),
        chain_of(family, "filter", FORWARD, _forward_rules(bridges), text),
        chain_of(family, "filter", STAGE1, _stage1_rules(bridges), text),
        chain_of(family, "filter", STAGE2, [Rule("DROP", out_dev=b.device) for b in bridges], text),
        chain_of(family, "nat", NAT, [Rule(dnat_chain(b.net)) for b in bridges if not b.internal], text),
        chain_of(family, "nat", POSTROUTING, _postrouting_rules(bridges, ports), text),
        chain_of(family, "raw", RAW, _raw_rules(target, version, bridges, ports), text),
    ]
    for b in bridges:
        mine = [p for p in ports if p.bridge == b.device]
        out.append(chain_of(family, "filter", in_chain(b.net), _in_rules(target, b, mine, version), text))
        if not b.internal:
            out.append(chain_of(family, "nat", dnat_chain(b.net), [p.dnat_rule() for p in mine], text))
    forward_jump = jump_of(family, "filter", "FORWARD", Rule(FORWARD), text)
    out += [
        forward_jump,
        # Inserted after NETCTL-FORWARD's jump, so it ends up above it: the user's rules first.
        jump_of(family, "filter", "FORWARD", Rule(USER), text, after=forward_jump.key),
        jump_of(family, "nat", "PREROUTING", Rule(NAT, dst_local=True), text),
        jump_of(family, "nat", "OUTPUT", Rule(NAT, dst_local=True), text),
        jump_of(family, "nat", "POSTROUTING", Rule(POSTROUTING), text),
        jump_of(family, "raw", "PREROUTING", Rule(RAW), text),
    ]
    return out


def _forward_rules(bridges: list[Bridge]) -> list[Rule]:
    rules = [Rule("ACCEPT", out_dev=b.device, ctstate="RELATED,ESTABLISHED") for b in bridges]
    rules += [Rule(in_chain(b.net), out_dev=b.device) for b in bridges]
    rules.append(Rule(STAGE1))
    rules += [Rule("ACCEPT" if b.icc else "DROP", in_dev=b.device, out_dev=b.device) for b in bridges]
    rules += [Rule("ACCEPT", in_dev=b.device, out_dev=b.device, out_negated=True)
              for b in bridges if not b.internal]
    rules += [Rule("DROP", out_dev=b.device) for b in bridges]
    return rules


def _stage1_rules(bridges: list[Bridge]) -> list[Rule]:
    rules = []
    for b in bridges:
        if b.internal:
            rules.append(Rule("DROP", in_dev=b.device, out_dev=b.device, out_negated=True))
            rules.append(Rule("DROP", in_dev=b.device, in_negated=True, out_dev=b.device))
        else:
            rules.append(Rule(STAGE2, in_dev=b.device, out_dev=b.device, out_negated=True))
    return rules


# ---------------------------------------------------------------------------- published ports


@dataclass(frozen=True)
class Published:
    """One published port, resolved to the endpoint that serves it."""

    host_ip: str | None  # None: every local address
    host_port: int
    container_ip: str
    container_port: int
    protocol: Protocol
    bridge: str
    loopback_only: bool

    def dnat_rule(self) -> Rule:
        to = f"[{self.container_ip}]" if ":" in self.container_ip else self.container_ip
        return Rule("DNAT", dst=host_prefix(self.host_ip) if self.host_ip else None,
                    proto=self.protocol.value, dport=self.host_port, to=f"{to}:{self.container_port}")

    def accept_rule(self) -> Rule:
        return Rule("ACCEPT", dst=host_prefix(self.container_ip), out_dev=self.bridge,
                    proto=self.protocol.value, dport=self.container_port, ctstate="DNAT")

    def hairpin_rule(self) -> Rule:
        c = host_prefix(self.container_ip)
        return Rule("MASQUERADE", src=c, dst=c, proto=self.protocol.value, dport=self.container_port)


def host_prefix(ip: str) -> str:
    """The one-address prefix rules match (`10.0.0.5/32`, `fd00::5/128`)."""
    return f"{ip}/{128 if ':' in ip else 32}"


def published(target: Target, version: int) -> list[Published]:
    out = []
    for c in sorted(target.containers, key=lambda c: c.name):
        ep = publishing_endpoint(c, target)
        if ep is None:
            continue
        address = ep.ipv4 if version == 4 else ep.ipv6
        if address is None:
            continue
        net = target.network(ep.network)
        assert net is not None
        container_ip, bridge = str(address.ip), net.device or ""
        binding = net.options.get(options.HOST_BINDING_IPV4) if version == 4 else None
        for port in c.ports:
            host_ip = _host_ip(port.host_ip or binding, version)
            if host_ip is None:
                continue
            out.append(
                Published(
                    host_ip=host_ip[0] or None,
                    host_port=port.host_port or port.container_port,
                    container_ip=container_ip,
                    container_port=port.container_port,
                    protocol=port.protocol,
                    bridge=bridge,
                    loopback_only=host_ip[1],
                )
            )
    return out


def publishing_endpoint(c: ContainerTarget, target: Target) -> EndpointTarget | None:
    """Ports are published on the container's first non-internal bridge network (Docker)."""
    for ep in c.endpoints:
        net = target.network(ep.network)
        if net is not None and drivers.get(net.driver).firewalled and not net.internal:
            return ep
    return None


@functools.lru_cache(maxsize=1024)  # the same few host IPs for 1,000 ports
def _host_ip(ip: str | None, version: int) -> tuple[str, bool] | None:
    """The address to match for this family ('' for any) and whether it is a loopback
    address; None if the port is not published in this family."""
    if not ip:
        return "", False
    addr = ipaddress.ip_address(ip)
    if addr.version != version:
        return None
    return ("", False) if addr.is_unspecified else (str(addr), addr.is_loopback)


def _in_rules(target: Target, b: Bridge, mine: list[Published], version: int) -> list[Rule]:
    rules = [p.accept_rule() for p in mine]
    if not b.icc and b.net.default_bridge:  # a link opens the pair on the default bridge only (Docker)
        rules += link_rules(target, b, version)
    return rules


def link_rules(target: Target, b: Bridge, version: int) -> list[Rule]:
    """With ICC off, a legacy link opens exactly the linked pair (on exposed ports if any)."""
    rules = []
    for c in sorted(target.containers, key=lambda c: c.name):
        for link in c.links:
            other = target.container(link.container)
            if other is None:
                continue
            a = _address_on(c, b.net.name, version)
            z = _address_on(other, b.net.name, version)
            if a is None or z is None:
                continue
            sa, sz = host_prefix(a), host_prefix(z)
            dev = b.device
            if not other.expose:
                rules += [Rule("ACCEPT", src=sa, dst=sz, in_dev=dev, out_dev=dev),
                          Rule("ACCEPT", src=sz, dst=sa, in_dev=dev, out_dev=dev)]
            for port, proto in other.expose:
                p = proto.value
                rules.append(Rule("ACCEPT", src=sa, dst=sz, in_dev=dev, out_dev=dev, proto=p, dport=port))
                rules.append(Rule("ACCEPT", src=sz, dst=sa, in_dev=dev, out_dev=dev, proto=p, sport=port))
    return rules


def _address_on(c: ContainerTarget, network: str, version: int) -> str | None:
    for ep in c.endpoints:
        if ep.network == network:
            address = ep.ipv4 if version == 4 else ep.ipv6
            return str(address.ip) if address else None
    return None


def _postrouting_rules(bridges: list[Bridge], published: list[Published]) -> list[Rule]:
    outward = [b for b in bridges if not b.internal]
    rules = [Rule("MASQUERADE", src=b.subnet, out_dev=b.device, out_negated=True)
             for b in outward if b.masquerade]
    # The host reaching a container through 127.0.0.1 or its own address: answer to the bridge.
    rules += [Rule("MASQUERADE", out_dev=b.device, src_local=True) for b in outward]
    rules += [p.hairpin_rule() for p in published]
    return rules


def _raw_rules(target: Target, version: int, bridges: list[Bridge], published: list[Published]) -> list[Rule]:
    devices = {b.net.name: b.device for b in bridges}
    # route_localnet (set for 127.0.0.1-published ports) makes the kernel accept 127.0.0.0/8 from
    # the bridge: a container with CAP_NET_RAW would reach every loopback-only host service.
    # Nothing legitimate comes that way: the host's own 127.0.0.1 traffic to a published port is
    # DNAT'd in OUTPUT and its replies come back to the gateway's address. The kernel already
    # refuses ::1 from a non-loopback device; the v6 rule says so where it can be read.
    loopback = LOOPBACK[version]
    rules = [Rule("DROP", dst=loopback, in_dev=b.device) for b in bridges]
    for c in sorted(target.containers, key=lambda c: c.name):
        for ep in c.endpoints:
            address = ep.ipv4 if version == 4 else ep.ipv6
            device = devices.get(ep.network)
            if address is not None and device is not None:
                rules.append(Rule("DROP", dst=host_prefix(str(address.ip)), in_dev=device, in_negated=True))
    for p in published:
        if p.loopback_only and p.host_ip:
            rules.append(Rule("DROP", dst=host_prefix(p.host_ip), in_dev="lo", in_negated=True,
                              proto=p.protocol.value, dport=p.host_port))
    return rules


# ---------------------------------------------------------------------------- sysctls


def sysctls(target: Target) -> list[Resource]:
    bridges = [n for n in target.networks if drivers.get(n.driver).firewalled and n.device]
    if not bridges:
        return []
    out = [
        # Bridged traffic must traverse iptables for ICC and isolation to hold (br_netfilter).
        sysctl("net.bridge.bridge-nf-call-iptables", "1"),
    ]
    if any(not n.internal for n in bridges):
        out.append(sysctl("net.ipv4.ip_forward", "1"))
    if any(n.enable_ipv6 for n in bridges):
        out.append(sysctl("net.bridge.bridge-nf-call-ip6tables", "1"))
        out.append(sysctl("net.ipv6.conf.all.forwarding", "1"))
    for n in bridges:
        if n.device and not n.internal:
            # 127.0.0.1:port -> container: the kernel must route loopback sources to the bridge.
            name = f"net.ipv4.conf.{sysctl_device(n.device)}.route_localnet"
            out.append(sysctl(name, "1", parent=f"link:/{n.device}"))
    return out
