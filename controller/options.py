"""The option keys netctl reads, named once (Docker's `com.docker.network.*` vocabulary).

Which driver reads which key is the driver's business (controller/drivers/); this module is
only the spelling, so that a key is never typed twice.
"""

from __future__ import annotations

BRIDGE_NAME = "com.docker.network.bridge.name"
DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
ICC = "com.docker.network.bridge.enable_icc"
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"
MTU = "com.docker.network.driver.mtu"
OVERLAY_VNI = "com.docker.network.driver.overlay.vxlanid_list"  # as `docker network inspect`

BOOL_WORDS = frozenset({"1", "t", "true", "0", "f", "false"})  # Go's strconv.ParseBool, as Docker


def is_true(value: object, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() in ("1", "t", "true", "yes", "on")
