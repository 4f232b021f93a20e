"""Where netctl keeps the cluster's state in etcd (pure). Values are JSON.

    /netctl/networks/NAME              an overlay network: manifest body, ID, VNI, subnet
    /netctl/vni/VNI                    -> network name (claimed with the network, in one txn)
    /netctl/subnets/CIDR               -> network name (CIDR with "/" as "_")
    /netctl/subnets-version            bumped by every subnet claim: claims are serialised, so
                                       overlap checks see a consistent set
    /netctl/ipam/NET/IP                -> {host, container}: an address in use (create-if-absent)
    /netctl/endpoints/NET/HOST/NAME    -> {ip, mac, vtep}: an endpoint, durable
    /netctl/hosts/HOST                 -> {vtep, subnets}: a host and its local subnets, durable
    /netctl/alive/HOST                 -> {vtep}: attached to the host's lease; gone = host gone
    /netctl/probes/NONCE/HOST          a UDP 4789 probe from NONCE's sender arrived at HOST

Endpoints are durable and liveness is a separate leased key, so an agent restart or an
etcd outage never has to re-publish anything: peers only filter by the live hosts.
"""

from __future__ import annotations

ROOT = "/netctl/"
NETWORKS = ROOT + "networks/"
VNIS = ROOT + "vni/"
SUBNETS = ROOT + "subnets/"
SUBNETS_VERSION = ROOT + "subnets-version"
IPAM = ROOT + "ipam/"
ENDPOINTS = ROOT + "endpoints/"
HOSTS = ROOT + "hosts/"
ALIVE = ROOT + "alive/"
PROBES = ROOT + "probes/"


def network(name: str) -> str:
    return NETWORKS + name


def vni(number: int) -> str:
    return f"{VNIS}{number}"


def subnet(cidr: str) -> str:
    return SUBNETS + cidr.replace("/", "_")


def subnet_of(key: str) -> str:
    return key[len(SUBNETS):].replace("_", "/")


def address_prefix(net: str) -> str:
    return f"{IPAM}{net}/"


def address(net: str, ip: str) -> str:
    return address_prefix(net) + ip


def endpoint_prefix(net: str) -> str:
    return f"{ENDPOINTS}{net}/"


def endpoint(net: str, host: str, container: str) -> str:
    return f"{endpoint_prefix(net)}{host}/{container}"


def host(name: str) -> str:
    return HOSTS + name


def alive(name: str) -> str:
    return ALIVE + name


def probe(nonce: str, host_name: str) -> str:
    return f"{PROBES}{nonce}/{host_name}"


def parts(key: str, prefix: str) -> list[str]:
    """The `/`-separated fields of `key` after `prefix`."""
    return key[len(prefix):].split("/")
