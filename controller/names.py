"""Kernel names and IDs derived from netctl's objects (pure).

Interface names are limited to 15 bytes (IFNAMSIZ - 1); we derive them from IDs instead of
rejecting long container or network names.
"""

from __future__ import annotations

import hashlib
import secrets

IFNAMSIZ = 15
OWNER_PREFIX = "netctl:"  # IFLA_IFALIAS of every link netctl owns


def new_id() -> str:
    """A 64-hex object ID, as Docker's."""
    return secrets.token_hex(32)


def endpoint_id(container_id: str, network_id: str) -> str:
    """Stable: the same container on the same network always has the same endpoint."""
    return hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()


def bridge_name(network_id: str) -> str:
    return f"br-{network_id[:12]}"


def host_veth_name(endpoint: str) -> str:
    return f"veth{endpoint[:8]}"


def container_ifname(index: int) -> str:
    return f"eth{index}"


def owner_alias(object_id: str) -> str:
    return f"{OWNER_PREFIX}{object_id}"


def is_owned_alias(alias: str | None) -> bool:
    return bool(alias) and str(alias).startswith(OWNER_PREFIX)
