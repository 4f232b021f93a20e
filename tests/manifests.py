"""Manifest builders for tests: one JSON document per call (JSON is YAML), so a topology
reads as a table of what differs instead of repeated apiVersion/kind/metadata headers."""

from __future__ import annotations

import json
from typing import Any

Attach = str | tuple[str, str] | dict[str, Any]


def document(kind: str, name: str, spec: dict[str, Any] | None = None,
             labels: dict[str, str] | None = None) -> str:
    body: dict[str, Any] = {"apiVersion": "netctl/v1", "kind": kind, "metadata": {"name": name}}
    if labels:
        body["metadata"]["labels"] = labels
    if spec:
        body["spec"] = spec
    return json.dumps(body)


def network(name: str, *subnets: str, **spec: Any) -> str:
    """A Network with one IPAM config per subnet; `labels` go to metadata, other keys to spec."""
    labels = spec.pop("labels", None)
    if subnets:
        spec["ipam"] = {"config": [{"subnet": s} for s in subnets]}
    return document("Network", name, spec, labels)


def attachment(item: Attach) -> str | dict[str, Any]:
    """"net", ("net", "10.0.0.5") for a static IPv4 address, or an attachment as written."""
    if isinstance(item, tuple):
        return {"name": item[0], "ipv4Address": item[1]}
    return item


def container(name: str, *networks: Attach, **spec: Any) -> str:
    """A Container on `networks` (none given: the default bridge); `labels` go to metadata,
    other keys to spec."""
    labels = spec.pop("labels", None)
    if networks:
        spec["networks"] = [attachment(n) for n in networks]
    return document("Container", name, spec, labels)


def manifest(*documents: str) -> str:
    return "\n---\n".join(documents) + "\n"
