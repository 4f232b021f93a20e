"""The data netctl passes between its layers: specs, targets, resources, plans.

Everything here is a frozen dataclass: layers hand values to each other and never mutate them.

    Spec     what the user asked for (validated manifests)
    Target   the same, made concrete (IDs, subnets, addresses, MACs, interface names)
    Resource one kernel object with a key, attributes and dependencies
    Plan     ordered actions that turn observed resources into target resources
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import options

IPv4Interface = ipaddress.IPv4Interface
IPv6Interface = ipaddress.IPv6Interface
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Source:
    """Where an object was declared: shown in every error and in `netctl status`."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class IPAMConfig:
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    driver: str = "bridge"
    ipam: tuple[IPAMConfig, ...] = ()
    internal: bool = False
    enable_ipv6: bool = False
    attachable: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    source: Source = Source("<builtin>")
    builtin: bool = False


class Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


@dataclass(frozen=True)
class PortSpec:
    """One published port (ranges are expanded by load: one PortSpec per port)."""

    container_port: int
    host_port: int | None = None  # None: Docker would pick an ephemeral port; we require one
    host_ip: str | None = None  # None: the network's host_binding_ipv4 (default 0.0.0.0)
    protocol: Protocol = Protocol.TCP


@dataclass(frozen=True)
class Attachment:
    """A container's membership in one network (`spec.networks[]`)."""

    network: str
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link:
    """A legacy link `name:alias` (default bridge only)."""

    container: str
    alias: str


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    networks: tuple[Attachment, ...] = (Attachment("bridge"),)
    hostname: str | None = None
    ports: tuple[PortSpec, ...] = ()
    expose: tuple[tuple[int, Protocol], ...] = ()
    links: tuple[Link, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (hostname, ip)
    labels: Mapping[str, str] = field(default_factory=dict)
    source: Source = Source("<cli>")


@dataclass(frozen=True)
class Document:
    """One manifest document as written, kept so that the store can replay it."""

    kind: str
    name: str
    body: Mapping[str, Any]
    source: Source
    lines: Mapping[str, int] = field(default_factory=dict)  # path ("spec.ports[1]") -> line


@dataclass(frozen=True)
class Spec:
    networks: tuple[NetworkSpec, ...] = ()
    containers: tuple[ContainerSpec, ...] = ()

    def network(self, name: str) -> NetworkSpec | None:
        return next((n for n in self.networks if n.name == name), None)

    def container(self, name: str) -> ContainerSpec | None:
        return next((c for c in self.containers if c.name == name), None)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class SubnetTarget:
    subnet: IPNetwork
    gateway: IPInterface | None  # the gateway with the subnet's prefix (on the bridge)
    ip_range: IPNetwork | None = None
    aux_addresses: Mapping[str, str] = field(default_factory=dict)
    # Docker's inspect shows a gateway the user gave or one of a pool subnet, not the one a
    # user subnet gets by default (the bridge has it all the same).
    gateway_shown: bool = True


@dataclass(frozen=True)
class NetworkTarget:
    name: str
    id: str
    driver: str
    scope: str  # "local" | "global"
    device: str | None  # the bridge's name, None for host/none
    mtu: int
    subnets: tuple[SubnetTarget, ...]
    internal: bool
    enable_ipv6: bool
    options: Mapping[str, str]
    labels: Mapping[str, str]
    created: str  # RFC 3339, from the store
    builtin: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def default_bridge(self) -> bool:
        """The pre-defined `bridge` network (Docker's docker0): legacy links, no embedded DNS."""
        return self.builtin and self.option_bool(options.DEFAULT_BRIDGE, False)

    def option_bool(self, key: str, default: bool) -> bool:
        return options.is_true(self.options.get(key), default)


@dataclass(frozen=True)
class EndpointTarget:
    """One container's interface on one network."""

    id: str
    network: str
    container: str
    ifname: str  # inside the container: eth0, eth1, ...
    host_ifname: str  # the host-side veth
    mac: str
    ipv4: IPv4Interface | None
    ipv6: IPv6Interface | None
    gateway4: ipaddress.IPv4Address | None
    gateway6: ipaddress.IPv6Address | None
    mtu: int
    aliases: tuple[str, ...] = ()
    static: tuple[str, ...] = ()  # the addresses the manifest asked for (Docker's IPAMConfig)


@dataclass(frozen=True)
class ContainerTarget:
    name: str
    id: str
    netns: str | None  # None: the host's namespace (network "host")
    hostname: str
    endpoints: tuple[EndpointTarget, ...]
    ports: tuple[PortSpec, ...]
    expose: tuple[tuple[int, Protocol], ...]
    links: tuple[Link, ...]
    dns: tuple[str, ...]
    dns_search: tuple[str, ...]
    dns_options: tuple[str, ...]
    extra_hosts: tuple[tuple[str, str], ...]
    labels: Mapping[str, str]
    created: str

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def primary(self) -> EndpointTarget | None:
        return self.endpoints[0] if self.endpoints else None


@dataclass(frozen=True)
class Target:
    networks: tuple[NetworkTarget, ...]
    containers: tuple[ContainerTarget, ...]
    host_resolvers: tuple[str, ...] = ()
    host_search: tuple[str, ...] = ()
    host_options: tuple[str, ...] = ()
    # packets with this firewall mark (VALUE or VALUE/MASK) are accepted by netctl's nftables
    # forward chain: the user's way past netctl's drops (Docker's --bridge-accept-fwmark)
    accept_fwmark: str = ""

    def network(self, name: str) -> NetworkTarget | None:
        return next((n for n in self.networks if n.name == name), None)

    def container(self, name: str) -> ContainerTarget | None:
        return next((c for c in self.containers if c.name == name), None)

    def endpoints(self, network: str) -> tuple[EndpointTarget, ...]:
        return tuple(e for c in self.containers for e in c.endpoints if e.network == network)


# --------------------------------------------------------------------------- resources


class Kind(enum.StrEnum):
    """Kernel object kinds, in no particular order (dependencies order the plan)."""

    NETNS = "netns"
    BRIDGE = "bridge"
    VETH = "veth"
    NSLINK = "nslink"  # the container side of a veth, configured in its namespace
    ADDRESS = "address"
    ROUTE = "route"
    FILE = "file"
    SYSCTL = "sysctl"
    CHAIN = "chain"  # an iptables chain owned by netctl, with all its rules
    JUMP = "jump"  # the one rule in a built-in chain that jumps to a netctl chain
    NFT_TABLE = "nftable"  # netctl's nftables table: its chains, rules and sets (not elements)
    NFT_ELEMENT = "nftelement"  # one element of a set or map in that table
    VXLAN = "vxlan"  # an overlay network's namespace with its bridge and VXLAN device
    OVPORT = "ovport"  # a veth from an overlay network's bridge to a container
    FDB = "fdb"  # a VXLAN forwarding entry: remote endpoint's MAC -> its host (VTEP)
    NEIGH = "neigh"  # a permanent ARP entry on a VXLAN device: remote endpoint's IP -> MAC
    SERVICE = "service"  # a process netctl keeps running for its containers (the DNS server)


@dataclass(frozen=True)
class Resource:
    """One kernel object. `key` is unique; `attrs` are compared to plan updates.

    `netns` is where the object lives (None: the host's namespace). `deps` are keys that must
    exist first. `parent` is the key whose deletion destroys this object too (a veth dies with
    its namespace, an address with its link): the planner never deletes such an object
    separately, and recreates it when its parent is replaced. `immutable` names attributes
    that cannot change in place (a change replaces the resource).
    """

    kind: Kind
    key: str
    attrs: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    deps: tuple[str, ...] = ()
    netns: str | None = None
    immutable: frozenset[str] = frozenset()
    parent: str | None = None

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


class Op(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    """One attribute that differs: (name, observed, target)."""

    name: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Action:
    op: Op
    resource: Resource  # the target resource (create/update) or the observed one (delete)
    changes: tuple[Change, ...] = ()

    @property
    def symbol(self) -> str:
        return {Op.CREATE: "+", Op.UPDATE: "~", Op.DELETE: "-"}[self.op]


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def count(self, op: Op) -> int:
        return sum(1 for a in self.actions if a.op is op)

    def summary(self) -> str:
        if self.empty:
            return "no changes"
        return (
            f"{self.count(Op.CREATE)} to create, {self.count(Op.UPDATE)} to update, "
            f"{self.count(Op.DELETE)} to delete"
        )


@dataclass(frozen=True)
class Observed:
    resources: tuple[Resource, ...] = ()

    def by_key(self) -> dict[str, Resource]:
        return {r.key: r for r in self.resources}


# --------------------------------------------------------------------------- allocations


@dataclass(frozen=True)
class Allocations:
    """What resolve decided once and must keep deciding the same way (persisted in the store).

    ids/created: (kind, name) -> 64-hex ID / RFC 3339 time; subnets: network -> subnet picked
    from a pool; addresses: (network, container, family 4|6) -> address.
    """

    ids: Mapping[tuple[str, str], str] = field(default_factory=dict)
    created: Mapping[tuple[str, str], str] = field(default_factory=dict)
    subnets: Mapping[str, str] = field(default_factory=dict)
    addresses: Mapping[tuple[str, str, int], str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusRow:
    """One object as the controller last saw it (`netctl status`)."""

    kind: str  # Network, Container, or File (a manifest that failed validation)
    name: str
    state: str  # converged | pending | failed
    reason: str = ""
    at: str = ""  # last reconcile that covered the object (RFC 3339)
    seconds: float = 0.0  # how long that reconcile took
    source: str = ""
    repaired: str = ""  # when drift was last repaired (RFC 3339), "" if never
