"""The per-container files Docker writes: /etc/hosts and /etc/resolv.conf (pure rendering).

They live in /etc/netns/<container>/, which `ip netns exec` and `netctl exec` bind-mount over
/etc for processes in the container's namespace.
"""

from __future__ import annotations

import ipaddress

from controller.model import ContainerTarget, Target

ETC_NETNS = "/etc/netns"
EMBEDDED_DNS = "127.0.0.11"

_LOCALHOST = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def hosts_path(container: str) -> str:
    return f"{ETC_NETNS}/{container}/hosts"


def resolv_path(container: str) -> str:
    return f"{ETC_NETNS}/{container}/resolv.conf"


def render_hosts(container: ContainerTarget, target: Target) -> str:
    lines = [_LOCALHOST, *_link_lines(container, target)]
    for ep in container.endpoints:
        if ep.ipv4 is not None:
            lines.append(f"{ep.ipv4.ip}\t{container.hostname}\n")
        if ep.ipv6 is not None:
            lines.append(f"{ep.ipv6.ip}\t{container.hostname}\n")
    for host, ip in container.extra_hosts:
        lines.append(f"{ip}\t{host}\n")
    return "".join(lines)


def _link_lines(container: ContainerTarget, target: Target) -> list[str]:
    """Legacy links, as Docker writes them: `IP alias hostname name`, on the default bridge
    only (on a user-defined network a link is a DNS alias, see dns.records)."""
    mine = {ep.network for ep in container.endpoints if is_default_bridge(target, ep.network)}
    out = []
    for link in container.links:
        other = target.container(link.container)
        if other is None:
            continue
        ep = next((e for e in other.endpoints if e.network in mine and e.ipv4), None)
        if ep is None or ep.ipv4 is None:
            continue
        names = dict.fromkeys([link.alias, other.hostname, other.name])
        out.append(f"{ep.ipv4.ip}\t{' '.join(names)}\n")
    return out


def is_default_bridge(target: Target, network: str) -> bool:
    net = target.network(network)
    return net is not None and net.default_bridge


def host_resolvers(resolv_conf: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(nameservers, search domains, options) of a resolv.conf, without loopback resolvers
    that would not be reachable from a container's namespace (Docker filters them too)."""
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in resolv_conf.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                if not ipaddress.ip_address(fields[1].split("%")[0]).is_loopback:
                    servers.append(fields[1])
            except ValueError:
                continue
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields and fields[0] == "options":
            options += fields[1:]
    return tuple(servers), tuple(search), tuple(dict.fromkeys(options))


def render_resolv(container: ContainerTarget, target: Target, embedded: bool) -> str:
    """Docker's file (libnetwork's resolvconf.Build): search, nameservers, options, and no
    comment. Options are the container's `dnsOptions`, else the host's (timeout, attempts,
    rotate, edns0...); the embedded server adds `ndots:0` unless an ndots is given."""
    options = container.dns_options or target.host_options
    if embedded:
        servers: tuple[str, ...] = (EMBEDDED_DNS,)
        if not any(o.startswith("ndots:") for o in options):
            options = (*options, "ndots:0")
    else:
        servers = container.dns or target.host_resolvers or ("8.8.8.8", "8.8.4.4")
    search = container.dns_search or target.host_search
    out = [f"search {' '.join(search)}\n"] if search else []
    out += [f"nameserver {s}\n" for s in servers]
    if options:
        out.append(f"options {' '.join(options)}\n")
    return "".join(out)
