"""`netctl explain SRC DST[:PORT[/PROTO]]`: can SRC reach DST, and why (pure).

The verdict follows the same target the firewall is rendered from (firewall/render.py's
bridges, published ports and link rules), so that the two cannot disagree about Docker's
semantics: the same bridge network reaches itself (unless ICC is off, where only legacy links
on the default bridge open a pair), two bridge networks are isolated both ways, an internal
network has no way in or out, container addresses are not reachable from outside the host
(Docker 28's raw-table drop), published ports are DNAT'd from outside, from the host and from
other containers. The CLI adds what the kernel says (drift) as notes.

SRC: a container, `host`, or an IP address outside the host. DST: a container (resolved as
SRC's resolver would: the embedded DNS on shared user-defined networks, the hosts file of a
legacy link), `host`, or an IP address (a container's, the host's, or one outside); with
`:PORT[/PROTO]` for a port (a published one when DST is the host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass, field

from controller import drivers, options, resources
from controller.errors import UserError
from controller.firewall import nftables, render
from controller.firewall.foreign import Flow, Walk
from controller.model import ContainerTarget, EndpointTarget, NetworkTarget, Protocol, Target

HOST = "host"


@dataclass(frozen=True)
class Place:
    """One end: a container, the host, or an address outside the host."""

    kind: str  # "container" | "host" | "outside"
    name: str  # the container's name, "host", or the address as given
    address: str | None = None  # DST: the address the packet is sent to


@dataclass
class Verdict:
    source: str
    destination: str
    port: int | None
    protocol: str
    reachable: bool = False
    resolved: str | None = None  # DST's address, when it was a name
    steps: list[str] = field(default_factory=list)  # hop by hop
    reasons: list[str] = field(default_factory=list)  # what decides, by the manifest setting
    notes: list[str] = field(default_factory=list)  # drift and other things to know
    # the kernel objects a "reachable" rests on: (resource key, what it is), for `with_kernel`
    depends: list[tuple[str, str]] = field(default_factory=list)
    flow: Flow | None = None  # the packet as the forward hook sees it, if it is forwarded

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "destination": self.destination, "port": self.port,
                "protocol": self.protocol, "reachable": self.reachable, "resolved": self.resolved,
                "steps": self.steps, "reasons": self.reasons, "notes": self.notes}


def with_foreign(v: Verdict, walk: Walk) -> Verdict:
    """What rules netctl does not own do to the packet (firewall/foreign.py's walk)."""
    d = walk.decision
    if d is not None and d.verdict == "DROP":
        if v.reachable:
            v.reachable = False
            v.reasons = [f"a rule netctl does not own drops it first: {d.where}"]
        else:
            v.notes.append(f"a rule netctl does not own drops it too: {d.where}")
    elif d is not None:
        v.notes.append(f"{d.where} accepts it before netctl's chain: netctl's rules are not consulted")
    v.notes += [f"{where} may match (not evaluated)" for where in walk.unsure]
    return v


def with_kernel(v: Verdict, missing: Collection[str]) -> Verdict:
    """The verdict for the kernel as it is: what the path rests on and the kernel lacks (the
    plan would create it) blocks it, whatever the applied state says."""
    gone = [what for key, what in v.depends if key in missing]
    if v.reachable and gone:
        v.reachable = False
        v.reasons = [f"{what} is missing in the kernel (drift: `netctl apply` restores it)" for what in gone]
    return v


def parse_destination(text: str) -> tuple[str, int | None, Protocol]:
    """`db`, `db:5432`, `host:8080/udp`, `10.0.0.5:80`, `[fd00::5]:80`."""
    name, proto = text, Protocol.TCP
    if "/" in name:
        name, _, p = name.rpartition("/")
        try:
            proto = Protocol(p)
        except ValueError:
            raise UserError(f"destination {text!r}: protocol {p!r} is not one of tcp, udp, sctp") from None
    port: int | None = None
    if name.startswith("["):  # [v6]:port
        address, _, rest = name[1:].partition("]")
        name, port_text = address, rest.removeprefix(":")
    elif name.count(":") == 1:
        name, _, port_text = name.partition(":")
    else:
        port_text = ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UserError(f"destination {text!r}: {port_text!r} is not a port (1-65535)")
        port = int(port_text)
    return name, port, proto


def explain(target: Target, source: str, destination: str, host_addresses: Collection[str] = ()) -> Verdict:
    """`host_addresses`: the host's own addresses (observed: the target does not know the
    uplink's); an address among them, or a loopback one, is the host."""
    dst_name, port, proto = parse_destination(destination)
    v = Verdict(source, destination, port, proto.value)
    src = _place(target, source, is_source=True)
    dst = _destination(target, src, dst_name, v, host_addresses)
    if dst is None:
        return v  # the name did not resolve: the reason says so
    _decide(target, src, dst, port, proto, v)
    return v


# ------------------------------------------------------------------------------ the ends


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _place(target: Target, text: str, is_source: bool) -> Place:
    if text == HOST:
        return Place("host", HOST)
    c = target.container(text)
    if c is not None:
        return Place("container", c.name) if c.netns is not None else Place("host", c.name)
    if _is_ip(text):
        return Place("outside", text, text)
    what = "source" if is_source else "destination"
    raise UserError(f"{what} {text!r}: no container of that name is applied; expected a container, "
                    f"`host` or an IP address")


def _destination(target: Target, src: Place, name: str, v: Verdict,
                 host_addresses: Collection[str]) -> Place | None:
    if name == HOST:
        return Place("host", HOST)
    if _is_ip(name):
        owner = _owner_of(target, name)
        if owner is not None:
            return Place("container", owner.name, name)
        if ipaddress.ip_address(name).is_loopback and src.kind == "container":
            v.reasons.append(f"{name} inside {src.name} is {src.name}'s own loopback: nothing of netctl's "
                             "is in the way")
            v.reachable = True
            return None
        if (_is_gateway(target, name) or name in host_addresses or ipaddress.ip_address(name).is_loopback
                or src.kind == "outside"):
            return Place("host", HOST, name)  # from outside: an address no container has is the host's
        return Place("outside", name, name)
    c = target.container(name)
    if c is None:
        raise UserError(f"destination {name!r}: no container of that name is applied; expected a "
                        "container, `host` or an IP address")
    if c.netns is None:
        return Place("host", c.name)
    if src.kind != "container":
        ep = next((e for e in c.endpoints if e.ipv4 is not None), None)
        if ep is None or ep.ipv4 is None:
            v.reasons.append(f"{c.name} has no address (network none)")
            return None
        v.resolved = str(ep.ipv4.ip)
        v.notes.append(f"{src.name} does not resolve container names: using {c.name}'s address on "
                       f"{ep.network}, {ep.ipv4.ip}")
        return Place("container", c.name, str(ep.ipv4.ip))
    return _resolve(target, _container(target, src.name), c, name, v)


def _resolve(target: Target, src: ContainerTarget, dst: ContainerTarget, name: str,
             v: Verdict) -> Place | None:
    """As SRC's resolver answers `name`: the embedded DNS on a user-defined network both are
    on (with that network's address), else a legacy link's hosts line, else NXDOMAIN."""
    src_nets = {e.network for e in src.endpoints}
    for ep in dst.endpoints:
        net = target.network(ep.network)
        if (net is not None and ep.network in src_nets and not net.default_bridge
                and drivers.get(net.driver).addressed and ep.ipv4 is not None):
            v.resolved = str(ep.ipv4.ip)
            v.steps.append(f"{name} resolves to {ep.ipv4.ip} (embedded DNS at 127.0.0.11, on {net.name})")
            return Place("container", dst.name, str(ep.ipv4.ip))
    for link in src.links:
        if link.container == dst.name:
            bridge = next((e for e in dst.endpoints if (n := target.network(e.network)) and n.default_bridge),
                          None)
            if bridge is not None and bridge.ipv4 is not None:
                v.resolved = str(bridge.ipv4.ip)
                v.steps.append(f"{name} resolves to {bridge.ipv4.ip} (/etc/hosts: legacy link "
                               f"{dst.name}:{link.alias})")
                return Place("container", dst.name, str(bridge.ipv4.ip))
    v.reasons.append(f"{dst.name} shares no user-defined network with {src.name}: NXDOMAIN "
                     "(the default bridge has no embedded DNS; links give a hosts line)")
    return None


def _container(target: Target, name: str) -> ContainerTarget:
    c = target.container(name)
    assert c is not None
    return c


def _addresses(ep: EndpointTarget) -> tuple[str, ...]:
    return tuple(str(a.ip) for a in (ep.ipv4, ep.ipv6) if a is not None)


def _owner_of(target: Target, ip: str) -> ContainerTarget | None:
    return next((c for c in target.containers if any(ip in _addresses(ep) for ep in c.endpoints)), None)


def _endpoint_with(c: ContainerTarget, ip: str) -> EndpointTarget:
    return next(ep for ep in c.endpoints if ip in _addresses(ep))


def _is_gateway(target: Target, ip: str) -> bool:
    return any(s.gateway is not None and str(s.gateway.ip) == ip for n in target.networks for s in n.subnets)


# ------------------------------------------------------------------------------ the decision


def _decide(target: Target, src: Place, dst: Place, port: int | None, proto: Protocol, v: Verdict) -> None:
    if dst.kind == "host":
        _to_host(target, src, dst, port, proto, v)
    elif dst.kind == "outside":
        _to_outside(target, src, dst, v)
    elif src.kind == "host":
        assert dst.address is not None
        ep = _endpoint_with(_container(target, dst.name), dst.address)
        net = _network(target, ep.network)
        v.steps.append(f"host -> {net.device} (on-link {ep.network}) -> {dst.name} {ep.ifname} {dst.address}")
        v.reasons.append("the host reaches its containers' addresses directly, as with Docker")
        v.reachable = True
    elif src.kind == "outside":
        v.reasons.append(f"{dst.address} is a container address: from outside the host it is dropped "
                         "(Docker 28's raw-table rule); publish a port instead")
    else:
        _between_containers(target, _container(target, src.name), dst, port, proto, v)


def _network(target: Target, name: str) -> NetworkTarget:
    net = target.network(name)
    assert net is not None
    return net


def _way_out(target: Target, c: ContainerTarget) -> EndpointTarget | None:
    """The endpoint of c's default route: its first network that is not internal."""
    for ep in c.endpoints:
        net = _network(target, ep.network)
        if drivers.get(net.driver).routed and not net.internal and ep.gateway4 is not None:
            return ep
    return None


def _between_containers(target: Target, src: ContainerTarget, dst: Place, port: int | None,
                        proto: Protocol, v: Verdict) -> None:
    assert dst.address is not None
    other = _container(target, dst.name)
    dep = _endpoint_with(other, dst.address)
    net = _network(target, dep.network)
    sep = next((e for e in src.endpoints if e.network == net.name), None)
    if sep is not None:  # on-link: the bridge forwards within the network
        v6 = ":" in dst.address
        src_ip = str(sep.ipv6.ip if sep.ipv6 else "") if v6 else str(sep.ipv4.ip if sep.ipv4 else "")
        v.steps.append(f"{src.name} {sep.ifname} {src_ip} -> bridge {net.device} ({net.name}) -> "
                       f"{other.name} {dep.ifname} {dst.address}")
        if drivers.get(net.driver).firewalled and src_ip:  # bridged, through the forward hook
            v.flow = Flow(src_ip, dst.address, proto.value, port, iif=net.device, oif=net.device)
        if not drivers.get(net.driver).firewalled or net.option_bool(options.ICC, True):
            v.reasons.append(f"{src.name} and {other.name} are both on {net.name}")
            v.reachable = True
            return
        if net.default_bridge and _linked(target, net, src_ip, dst.address, port, proto):
            v.reasons.append(f"enable_icc is false on {net.name}, but a legacy link opens "
                             f"{src.name} -> {other.name}" + ("" if not other.expose else
                                                              " on its exposed ports"))
            v.reachable = True
            return
        link = "" if net.default_bridge else " (on a user-defined network a link is only a DNS alias)"
        v.reasons.append(f"enable_icc is false on {net.name} and {src.name} has no link to "
                         f"{other.name}{link}" if not (net.default_bridge and _has_link(src, other))
                         else f"enable_icc is false on {net.name}: the link {src.name} -> {other.name} "
                         f"opens only {other.name}'s exposed ports ({_exposed(other)})")
        return
    out = _way_out(target, src)
    if out is None:
        nets = ", ".join(e.network for e in src.endpoints) or "none"
        v.reasons.append(f"{src.name} has no route to {dst.address}: its networks ({nets}) are internal "
                         "or have no gateway, and it shares no network with " + other.name)
        return
    src_net = _network(target, out.network)
    v.steps.append(f"{src.name} {out.ifname} -> default route via {out.gateway4} ({src_net.name}) -> host")
    if net.internal:
        v.reasons.append(f"{net.name} is internal: nothing enters it from another network")
    elif drivers.get(net.driver).firewalled and drivers.get(src_net.driver).firewalled:
        v.reasons.append(f"isolated: {src_net.name} and {net.name} are different bridge networks "
                         f"(a container on both reaches both)")
    else:
        v.reasons.append(f"{net.name} ({net.driver}) is not reached through the host from {src_net.name}")


def _has_link(a: ContainerTarget, b: ContainerTarget) -> bool:
    return (any(link.container == b.name for link in a.links)
            or any(link.container == a.name for link in b.links))


def _exposed(c: ContainerTarget) -> str:
    return ", ".join(f"{p}/{proto.value}" for p, proto in c.expose)


def _linked(target: Target, net: NetworkTarget, src_ip: str, dst_ip: str, port: int | None,
            proto: Protocol) -> bool:
    """Would the link rules render.link_rules writes for `net` accept a new connection?"""
    version = 6 if ":" in dst_ip else 4
    bridge = next((b for b in render.bridges(target, version) if b.net.name == net.name), None)
    if bridge is None:
        return False
    for rule in render.link_rules(target, bridge, version):
        if (rule.src != render.host_prefix(src_ip) or rule.dst != render.host_prefix(dst_ip)
                or rule.sport is not None):
            continue
        if rule.proto is None or (rule.proto == proto.value and (port is None or rule.dport == port)):
            return True
    return False


def _to_outside(target: Target, src: Place, dst: Place, v: Verdict) -> None:
    if src.kind == "host":
        v.reasons.append("the host's own traffic: netctl's firewall does not filter it")
        v.reachable = True
        return
    if src.kind == "outside":
        v.reasons.append("neither end is on this host")
        return
    c = _container(target, src.name)
    out = _way_out(target, c)
    if out is None:
        nets = ", ".join(e.network for e in c.endpoints) or "none"
        v.reasons.append(f"{c.name} has no way out: its networks ({nets}) are internal or have no gateway")
        return
    net = _network(target, out.network)
    v.steps.append(f"{c.name} {out.ifname} -> default route via {out.gateway4} ({net.name}) -> host -> "
                   f"{dst.address}")
    _default_route(c, dst.address, v)
    assert dst.address is not None
    v.flow = Flow(_address_of(out, dst.address), dst.address, v.protocol, v.port, iif=net.device)
    if net.option_bool(options.MASQUERADE, True):
        v.steps.append(f"masqueraded as the host's address on the way out (enable_ip_masquerade, {net.name})")
    else:
        v.notes.append(f"enable_ip_masquerade is false on {net.name}: replies need a route back to it")
    v.reasons.append(f"{net.name} is not internal: traffic may leave the host")
    v.reachable = True


def _address_of(ep: EndpointTarget, towards: str) -> str:
    iface = ep.ipv6 if ":" in towards else ep.ipv4
    return str(iface.ip) if iface is not None else ""


def _published_flow(target: Target, src: Place, p: render.Published) -> Flow | None:
    """After DNAT: to the container's address and port, out through its bridge."""
    if src.kind == "outside":
        return Flow(src.name, p.container_ip, p.protocol.value, p.container_port, oif=p.bridge)
    if src.kind != "container":
        return None  # the host's own connection: OUTPUT, not FORWARD
    c = _container(target, src.name)
    out = _way_out(target, c)
    if out is None:
        return None
    net = _network(target, out.network)
    return Flow(_address_of(out, p.container_ip), p.container_ip, p.protocol.value, p.container_port,
                iif=net.device, oif=p.bridge)


def _default_route(c: ContainerTarget, address: str | None, v: Verdict) -> None:
    six = bool(address) and ":" in str(address)
    v.depends.append((resources.route_key(c.netns, "default6" if six else "default"),
                      f"{c.name}'s default route{' (IPv6)' if six else ''}"))


def _to_host(target: Target, src: Place, dst: Place, port: int | None, proto: Protocol,
             v: Verdict) -> None:
    address = dst.address
    matches = []
    for version in (4, 6):
        for p in render.published(target, version):
            if p.host_port != port or p.protocol is not proto:
                continue
            matches.append(p)
    if port is None or not matches:
        if src.kind == "container" and _way_out(target, _container(target, src.name)) is None \
                and not (address and _is_gateway(target, address)):
            v.reasons.append(f"{src.name} has no route to the host's addresses (internal networks only)")
            return
        what = "nothing is published" if port is None else f"nothing is published on {port}/{proto.value}"
        v.reasons.append(f"{what}: only a service of the host itself could answer (netctl does not "
                         "filter the host's INPUT)")
        v.reachable = port is None
        return
    refused = []
    for p in matches:
        bound = p.host_ip or "every address of the host"
        if src.kind == "outside" and p.loopback_only:
            refused.append(f"port {port} is published on {p.host_ip} only: from the host itself only")
            continue
        if p.host_ip and address and address != p.host_ip:
            refused.append(f"port {port} is published on {p.host_ip}, not {address}")
            continue
        if src.kind == "container":
            c = _container(target, src.name)
            if p.loopback_only:
                refused.append(f"port {port} is published on {p.host_ip} only: a container's "
                               "127.0.0.1 is its own")
                continue
            if _way_out(target, c) is None:
                refused.append(f"{c.name} has no route to the host's addresses (internal networks only)")
                continue
            if not (address and _is_gateway(target, address)):
                _default_route(c, address, v)
        owner = _owner_of(target, p.container_ip)
        v.steps.append(f"DNAT {address or bound}:{port}/{proto.value} -> {p.container_ip}:{p.container_port} "
                       f"({owner.name if owner else '?'}, published on {bound})")
        v.steps.append(f"-> bridge {p.bridge} -> {p.container_ip}")
        if src.kind == "container" and owner is not None and owner.name == src.name:
            v.steps.append("hairpin: masqueraded so that the reply comes back through the bridge")
        v.reasons.append(f"port {port}/{proto.value} of {owner.name if owner else p.container_ip} "
                         f"is published on {bound}")
        v.depends.append((nftables.dnat_element_key(target, p), f"the DNAT of {port}/{proto.value}"))
        v.flow = _published_flow(target, src, p)
        v.reachable = True
        return
    v.reasons.extend(refused)
