"""Kernel names and IDs derived from netctl's objects (pure).

Interface names are limited to 15 bytes (IFNAMSIZ - 1); we derive them from IDs instead of
rejecting long container or network names.
"""

from __future__ import annotations

import hashlib
import re
import secrets

IFNAMSIZ = 15
OWNER_PREFIX = "netctl:"  # IFLA_IFALIAS of every link netctl owns


# A name the user gives a device: the kernel's dev_valid_name() allows almost any byte, but
# names also reach iptables (`+` is its wildcard, `!` its negation), nft, sysctl paths
# (`/proc/sys/net/ipv4/conf/NAME/`) and netlink templates (`%d`). So: a safe ASCII subset.
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SPECIAL = frozenset({"all", "default", "lo"})  # sysctl's conf/all, conf/default; the loopback
# What netctl names devices itself: a user's device with such a name could be taken for ours.
# (netctl0 is the default bridge network's: claiming it is a duplicate bridge name.)
_GENERATED = re.compile(r"(br|ov|vx)-[0-9a-f]{12}|veth[0-9a-f]{8}|netctl_gwbridge")


def interface_name_problem(name: str, generated_ok: bool = False) -> str | None:
    """Why `name` cannot be a device name netctl creates (None: it can)."""
    size = len(name.encode())
    if size == 0 or size > IFNAMSIZ:
        return f"device name {name!r} must be 1 to {IFNAMSIZ} bytes long, it is {size}"
    if not _IFNAME.fullmatch(name):
        return (f"device name {name!r} may contain only ASCII letters, digits, '_', '.' and '-', "
                "starting with a letter or digit")
    if name in _SPECIAL:
        return f"device name {name!r} is reserved by the kernel"
    if not generated_ok and _GENERATED.fullmatch(name):
        return f"device name {name!r} has the form of a name netctl gives its own devices"
    return None


def sysctl_path(name: str) -> str:
    """`net.ipv4.conf.br.x.rp_filter` cannot say which dot is the device's: like sysctl(8),
    a device's dots are written as `/` in the name and become dots again in the path."""
    return "/proc/sys/" + "/".join(part.replace("/", ".") for part in name.split("."))


def sysctl_device(device: str) -> str:
    """A device name as it appears inside a sysctl name (see sysctl_path)."""
    return device.replace(".", "/")


def new_id() -> str:
    """A 64-hex object ID, as Docker's."""
    return secrets.token_hex(32)


def endpoint_id(container_id: str, network_id: str) -> str:
    """Stable: the same container on the same network always has the same endpoint."""
    return hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()


def bridge_name(network_id: str) -> str:
    return f"br-{network_id[:12]}"


def bridge_mac(network_id: str) -> str:
    """A bridge's own MAC, fixed for its network. A Linux bridge without one takes the lowest
    MAC of its ports, so it changes when a container leaves and the others keep the old one
    in their neighbour cache (a minute without a gateway). Docker sets 02:42:... on its
    bridges; the rest is derived from the network ID here so that it survives restarts."""
    digest = hashlib.sha256(f"bridge/{network_id}".encode()).digest()
    return "02:42:" + ":".join(f"{b:02x}" for b in digest[:4])


def host_veth_name(endpoint: str) -> str:
    return f"veth{endpoint[:8]}"


def container_ifname(index: int) -> str:
    return f"eth{index}"


def owner_alias(object_id: str) -> str:
    return f"{OWNER_PREFIX}{object_id}"


def is_owned_alias(alias: str | None) -> bool:
    return bool(alias) and str(alias).startswith(OWNER_PREFIX)
