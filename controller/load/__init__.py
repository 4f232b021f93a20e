"""Manifests in, validated and typed specs out. Pure: reads files, never touches the kernel.

    parse_paths / parse_text   YAML -> Documents, each checked against schemas/*.json
                               (plus the micro-syntax of ports, addresses and links)
    load_builtin               the pre-defined networks shipped in manifests/
    network_spec / container_spec   one valid Document -> its typed spec: after load nothing
                               else reads a body (attachment_items writes attachments back)
    build_spec                 Documents -> Spec, then the checks that need every document
                               (names, subnets, addresses, links, published ports)

Nothing is reported one at a time: every problem, with its file, line and path, is collected
and raised together in one ManifestError, so a user fixes a manifest in one round trip.

The parts: common (paths, kinds), files (files and YAML), problems, schema (JSON Schema),
syntax (strings: ports, addresses...), build (typed conversion), checks (across documents).
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.load.build import (
    _accepted_networks,
    _Container,
    _container,
    _network,
    attachment_items,
    container_spec,
    network_spec,
)
from controller.load.checks import _check_all
from controller.load.common import (
    API_VERSION,
    BUILTIN_FILE,
    KINDS,
    MANIFEST_DIR,
    OTHER_SCHEMAS,
    PREDEFINED,
    SCHEMA_DIR,
)
from controller.load.files import _builtin_documents, parse_paths, parse_text
from controller.load.problems import _raise_if, problem_at
from controller.load.schema import parse_config, validate_document
from controller.load.syntax import (
    parse_domain_name,
    parse_exposed,
    parse_extra_host,
    parse_interface,
    parse_ip,
    parse_link,
    parse_port_mapping,
    parse_port_range,
    parse_protocol,
    parse_subnet,
)
from controller.model import Document, Spec


def load_builtin() -> list[Document]:
    """The pre-defined networks (bridge, host, none) from manifests/default-networks.yaml."""
    return list(_builtin_documents())


def build_spec(documents: Sequence[Document], builtin: Sequence[Document]) -> Spec:
    """Typed conversion of all documents, then the checks across them.

    Documents are re-validated first (they may come from the store rather than parse_*);
    cross-document checks only run once every document is valid on its own, so that one
    broken document does not cascade into "network not found" noise elsewhere.
    """
    files = [d.source.file for d in (*builtin, *documents)]
    problems = [p for d in (*builtin, *documents) for p in validate_document(d)]
    _raise_if(problems, files)
    networks = [_network(d, builtin=True) for d in builtin]
    containers: list[_Container] = []
    for doc in documents:
        if doc.kind == "Network":
            networks.append(_network(doc, builtin=False))
        else:
            containers.append(_container(doc))
    problems = list(_check_all(networks, containers))
    _raise_if(problems, files)
    return Spec(
        networks=tuple(n.spec for n in _accepted_networks(networks)),
        containers=tuple(c.spec for c in containers),
    )


__all__ = [
    "API_VERSION", "BUILTIN_FILE", "KINDS", "MANIFEST_DIR", "OTHER_SCHEMAS", "PREDEFINED", "SCHEMA_DIR",
    "attachment_items", "build_spec", "container_spec", "load_builtin", "network_spec", "parse_config",
    "parse_domain_name", "parse_exposed", "parse_extra_host", "parse_interface", "parse_ip", "parse_link",
    "parse_paths", "parse_port_mapping", "parse_port_range", "parse_protocol", "parse_subnet", "parse_text",
    "problem_at", "validate_document",
]
