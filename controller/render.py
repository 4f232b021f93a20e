"""Text and JSON views of plans, networks and containers (pure: values in, strings out)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from controller import drivers
from controller.model import Action, ContainerTarget, Kind, Observed, Plan, PortSpec, Resource, Target

_LABEL = {
    Kind.NETNS: "namespace",
    Kind.BRIDGE: "bridge",
    Kind.VETH: "veth",
    Kind.NSLINK: "interface",
    Kind.ADDRESS: "address",
    Kind.ROUTE: "route",
    Kind.FILE: "file",
    Kind.SYSCTL: "sysctl",
    Kind.CHAIN: "chain",
}


def describe(r: Resource) -> str:
    """`bridge netctl0`, `address container1/eth0 172.17.0.2/16`, ..."""
    a = r.attrs
    where = f"{r.netns}/" if r.netns else ""
    match r.kind:
        case Kind.NETNS:
            return f"namespace {a['name']}"
        case Kind.BRIDGE:
            return f"bridge {a['name']}"
        case Kind.VETH:
            plug = f" -> {a['master']}" if a.get("master") else ""
            return f"veth {a['name']} ({a['peer_netns']}/{a['peer_ifname']}{plug})"
        case Kind.NSLINK:
            return f"interface {where}{a['name']} ({a['mac']})"
        case Kind.ADDRESS:
            return f"address {where}{a['dev']} {a['address']}"
        case Kind.ROUTE:
            return f"route {where}{a['dst']} via {a['gateway']} dev {a['dev']}"
        case Kind.FILE:
            return f"file {a['path']}"
        case Kind.CHAIN:
            return f"chain {a['family']}/{a['table']}/{a['chain']}"
        case Kind.JUMP:
            return f"jump {a['family']}/{a['table']}/{a['chain']}: {a['rule']}"
        case Kind.NFT_TABLE:
            return f"nftables table {a['family']} {a['table']}"
        case Kind.NFT_ELEMENT:
            value = f" : {a['value']}" if a.get("value") else ""
            return f"element {a['set']} {{ {a['key']}{value} }}"
        case Kind.SYSCTL:
            return f"sysctl {a['name']} = {a['value']}"
        case Kind.VXLAN:
            return f"overlay {a['netns']} (bridge {a['bridge']}, vxlan {a['vxlan']} VNI {a['vni']})"
        case Kind.OVPORT:
            return f"veth {a['name']} ({a['peer_netns']}/{a['peer_ifname']} -> overlay {a['overlay']})"
        case Kind.FDB:
            return f"fdb {a['dev']} {a['mac']} -> {a['dst']}"
        case Kind.NEIGH:
            return f"neighbour {a['dev']} {a['ip']} -> {a['mac']}"
        case Kind.SERVICE:
            return f"service {a['name']}"
        case _:
            return f"{_LABEL[r.kind]} {r.key.split(':', 1)[1]}"


def plan_json(p: Plan) -> list[dict[str, Any]]:
    return [action_json(a) for a in p.actions]


def action_json(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {
        "op": a.op.value,
        "kind": a.resource.kind.value,
        "key": a.resource.key,
        "netns": a.resource.netns,
        "attrs": dict(a.resource.attrs),
    }
    if a.changes:
        out["changes"] = [{"name": c.name, "old": c.old, "new": c.new} for c in a.changes]
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Docker's plain column layout: left-aligned, three spaces between columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    out = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        out.append("   ".join(cells).rstrip())
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- Docker-shaped views


def driver_shown(driver: str) -> str:
    """The driver's name as Docker shows it (its `none` is `null`)."""
    d = drivers.policy(driver)
    return d.shown_as if d is not None else driver


def network_inspect(target: Target, observed: Observed, name: str) -> dict[str, Any]:
    """`docker network inspect`'s JSON, endpoint facts taken from the kernel."""
    n = target.network(name)
    assert n is not None
    seen = observed.by_key()
    containers: dict[str, Any] = {}
    for c in target.containers:
        for ep in c.endpoints:
            if ep.network != name:
                continue
            facts = endpoint_facts(seen, c.netns or "", ep.ifname)
            containers[c.id] = {
                "Name": c.name,
                "EndpointID": ep.id,
                "MacAddress": facts["mac"],
                "IPv4Address": facts["ipv4"],
                "IPv6Address": facts["ipv6"],
            }
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": n.scope,
        "Driver": driver_shown(n.driver),
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {
            "Driver": "default",
            "Options": None,
            "Config": [
                {
                    "Subnet": str(s.subnet),
                    **({"Gateway": str(s.gateway.ip)} if s.gateway and s.gateway_shown else {}),
                    **({"IPRange": str(s.ip_range)} if s.ip_range else {}),
                    **({"AuxiliaryAddresses": dict(s.aux_addresses)} if s.aux_addresses else {}),
                }
                for s in n.subnets
            ],
        },
        "Internal": n.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(n.options),
        "Labels": dict(n.labels),
    }


def endpoint_facts(seen: dict[str, Resource], netns: str, ifname: str) -> dict[str, str]:
    """MAC and addresses of a container interface as the kernel has them ('' if absent)."""
    link = seen.get(f"link:{netns}/{ifname}")
    prefix = f"addr:{netns}/{ifname}/"
    addrs = [k[len(prefix):] for k in seen if k.startswith(prefix)]
    return {
        "mac": link.attrs["mac"] if link else "",
        "ipv4": next((a for a in addrs if ":" not in a), ""),
        "ipv6": next((a for a in addrs if ":" in a), ""),
    }


def networks_shown(c: ContainerTarget) -> str:
    """`container ls`'s NETWORKS: its networks, or what it shares when it has none."""
    return ",".join(ep.network for ep in c.endpoints) or ("host" if c.netns is None else "none")


def ipv4_shown(c: ContainerTarget) -> str:
    return ",".join(str(ep.ipv4.ip) for ep in c.endpoints if ep.ipv4)


def ports_shown(ports: Sequence[PortSpec]) -> str:
    """`docker ps`'s PORTS: consecutive ports folded (`0.0.0.0:9000-9002->9000-9002/tcp`)."""
    runs: list[list[PortSpec]] = []
    for p in ports:
        last = runs[-1][-1] if runs else None
        if last is not None and (last.host_ip, last.protocol) == (p.host_ip, p.protocol) and (
            (last.host_port or 0) + 1 == p.host_port and last.container_port + 1 == p.container_port
        ):
            runs[-1].append(p)
        else:
            runs.append([p])

    def span(first: int, last: int) -> str:
        return str(first) if first == last else f"{first}-{last}"

    return ", ".join(
        f"{r[0].host_ip or '0.0.0.0'}:{span(r[0].host_port or 0, r[-1].host_port or 0)}->"
        f"{span(r[0].container_port, r[-1].container_port)}/{r[0].protocol.value}"
        for r in runs
    )


def container_inspect(target: Target, observed: Observed, name: str) -> dict[str, Any]:
    c = target.container(name)
    assert c is not None
    seen = observed.by_key()
    networks = {}
    default: dict[str, Any] = {}  # the default bridge's endpoint, also shown at the top (Docker)
    for ep in c.endpoints:
        net = target.network(ep.network)
        assert net is not None
        facts = endpoint_facts(seen, c.netns or "", ep.ifname)
        on_default = net.default_bridge
        dns_names = list(dict.fromkeys([c.name, *ep.aliases, c.short_id, c.hostname]))
        static4 = next((a for a in ep.static if ":" not in a), None)
        static6 = next((a for a in ep.static if ":" in a), None)
        settings = {
            "IPAMConfig": {**({"IPv4Address": static4} if static4 else {}),
                           **({"IPv6Address": static6} if static6 else {})} or None,
            "Links": None if on_default or not c.links else
            [f"{link.container}:{link.alias}" for link in c.links],
            "Aliases": list(ep.aliases) or None,
            "MacAddress": facts["mac"],
            "DriverOpts": None,
            "NetworkID": net.id,
            "EndpointID": ep.id,
            "Gateway": str(ep.gateway4 or ""),
            "IPAddress": facts["ipv4"].split("/")[0],
            "IPPrefixLen": int(facts["ipv4"].split("/")[1]) if facts["ipv4"] else 0,
            "IPv6Gateway": str(ep.gateway6 or ""),
            "GlobalIPv6Address": facts["ipv6"].split("/")[0],
            "GlobalIPv6PrefixLen": int(facts["ipv6"].split("/")[1]) if facts["ipv6"] else 0,
            # the names the embedded DNS answers for it on this network (none on the default bridge)
            "DNSNames": None if on_default else dns_names,
        }
        networks[ep.network] = settings
        if on_default:
            default = settings
    return {
        "Id": c.id,
        "Name": "/" + c.name,
        "Created": c.created,
        "Config": {"Hostname": c.hostname, "Labels": dict(c.labels)},
        "HostConfig": {
            "Links": [f"/{link.container}:/{c.name}/{link.alias}" for link in c.links],
            "Dns": list(c.dns),
            "DnsSearch": list(c.dns_search),
            "ExtraHosts": [f"{h}:{ip}" for h, ip in c.extra_hosts],
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": hashlib.sha256(f"sandbox/{c.id}".encode()).hexdigest() if c.netns else "",
            "SandboxKey": f"/run/netns/{c.netns}" if c.netns else "",
            "HostsPath": f"/etc/netns/{c.name}/hosts",
            "ResolvConfPath": f"/etc/netns/{c.name}/resolv.conf",
            "Ports": {
                f"{p.container_port}/{p.protocol.value}": [
                    {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)}
                ]
                for p in c.ports
            },
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            **{key: default.get(key, "" if key not in ("IPPrefixLen", "GlobalIPv6PrefixLen") else 0)
               for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen",
                           "IPAddress", "IPPrefixLen", "IPv6Gateway", "MacAddress")},
            "Networks": networks,
        },
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=4) + "\n"
