"""Which documents a failed kernel action comes from (pure).

A resource key says where the object lives (`link:NS/NAME`, `addr:/DEV/CIDR`,
`sysctl:/net.ipv4.conf.DEV.x`, `file:/etc/netns/NS/hosts`, `netns:NS`): the device or
namespace names the network or container whose document asked for it. When no object can
be named (a firewall table, a global sysctl), the documents of the change are blamed.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller import etcfiles
from controller.model import Document, Target


def blamed(key: str | None, target: Target, documents: Sequence[Document],
           changed: Sequence[Document]) -> list[Document]:
    owner = _owner(key, target) if key else None
    if owner is not None:
        found = [d for d in documents if (d.kind, d.name) == owner]
        if found:
            return found
    return list(changed)


def _owner(key: str, target: Target) -> tuple[str, str] | None:
    kind, _, rest = key.partition(":")
    netns, _, path = rest.partition("/")
    if kind == "netns":
        netns = rest
    elif kind == "file" and rest.startswith(etcfiles.ETC_NETNS + "/"):
        netns = rest[len(etcfiles.ETC_NETNS) + 1:].split("/")[0]
    if netns:
        container = next((c for c in target.containers if c.netns == netns), None)
        return ("Container", container.name) if container else None
    device = path.split("/")[0]
    if kind == "sysctl":
        parts = path.split(".")
        device = parts[3].replace("/", ".") if len(parts) == 5 and parts[2] == "conf" else ""
    if not device:
        return None
    for n in target.networks:
        if n.device == device:
            return ("Network", n.name)
    for c in target.containers:
        if any(e.host_ifname == device for e in c.endpoints):
            return ("Container", c.name)
    return None
