"""Address management, Docker's way (pure: the caller persists what it returns).

- Subnets for networks without one come from Docker's default local pools: 172.17-31.0.0/16,
  then 192.168.0.0/16 cut into /20s, skipping anything that overlaps a route on the host or a
  subnet another network already has.
- The gateway is the subnet's first address; container addresses are handed out lowest-first
  from `ipRange` (or the whole subnet), never the network, gateway, broadcast or aux addresses.
- A container's MAC is 02:42 followed by its IPv4 address, as Docker derives it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Iterator

from controller.errors import PoolExhausted  # no free subnet or address: free one or give one
from controller.model import IPAddress, IPNetwork

__all__ = ["PoolExhausted"]


def default_local_pools() -> Iterator[ipaddress.IPv4Network]:
    for second in range(17, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield from ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def default_global_pools() -> Iterator[ipaddress.IPv4Network]:
    """Overlay networks: 10.0.0.0/8 in /24s, as Docker's swarm default."""
    return ipaddress.IPv4Network("10.0.0.0/8").subnets(new_prefix=24)


def pick_subnet(
    pools: Iterable[ipaddress.IPv4Network], taken: Collection[IPNetwork]
) -> ipaddress.IPv4Network:
    """The first pool subnet that overlaps nothing in `taken`."""
    taken4 = [t for t in taken if t.version == 4]
    for candidate in pools:
        if not any(candidate.overlaps(t) for t in taken4):
            return candidate
    raise PoolExhausted("no free subnet left in the default address pools")


def first_host(subnet: IPNetwork) -> IPAddress:
    """The gateway Docker picks: the first usable address."""
    return subnet.network_address + 1


def reserved(
    subnet: IPNetwork, gateway: IPAddress | None, aux: Iterable[str]
) -> set[IPAddress]:
    out: set[IPAddress] = {subnet.network_address}
    if subnet.version == 4:
        out.add(subnet.broadcast_address)
    if gateway is not None:
        out.add(gateway)
    out.update(ipaddress.ip_address(a) for a in aux)
    return out


def allocate(
    subnet: IPNetwork,
    ip_range: IPNetwork | None,
    unavailable: Collection[IPAddress],
    start: IPAddress | None = None,
) -> IPAddress:
    """The lowest address of `ip_range` (or `subnet`) that is not unavailable.

    `start`: where to begin looking, when every lower address is known to be taken (a caller
    handing out many addresses in a row would otherwise rescan from the bottom each time).
    """
    pool = ip_range or subnet
    for candidate in _addresses(pool, start):
        if candidate in subnet and candidate not in unavailable:
            return candidate
    raise PoolExhausted(f"no available IP address in {pool}")


def _addresses(pool: IPNetwork, start: IPAddress | None = None) -> Iterator[IPAddress]:
    # Walk by integer: pool.hosts() builds huge lists for IPv6 and skips nothing we want kept.
    make = type(pool.network_address)
    first = int(pool.network_address)
    skip = max(0, int(start) - first) if start is not None and start.version == pool.version else 0
    for offset in range(skip, pool.num_addresses):
        yield make(first + offset)


def mac_from_ipv4(address: ipaddress.IPv4Address) -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def mac_from_id(endpoint_id: str) -> str:
    """A stable locally administered MAC for endpoints without IPv4."""
    return "02:42:" + ":".join(endpoint_id[i : i + 2] for i in range(0, 8, 2))
