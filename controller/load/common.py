"""What every part of the loader shares: paths, kinds, option keys."""

from __future__ import annotations

from pathlib import Path

from controller import drivers

API_VERSION = "netctl/v1"
ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"
MANIFEST_DIR = ROOT / "manifests"
BUILTIN_FILE = MANIFEST_DIR / "default-networks.yaml"
PREDEFINED = frozenset({"bridge", "host", "none"})
KINDS = {"Network": "network.schema.json", "Container": "container.schema.json"}
OTHER_SCHEMAS = {"HostConfig": "daemon.schema.json"}  # /etc/netctl/daemon.json

IPV6_MIN_MTU = 1280  # RFC 8200; the kernel turns IPv6 off on a link with less


def _exclusive(driver: str) -> bool:
    """host and none: one network each; a container on one joins no other, publishes nothing."""
    d = drivers.policy(driver)
    return d is not None and d.exclusive
