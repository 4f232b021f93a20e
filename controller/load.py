"""Manifests in, validated and typed specs out. Pure: reads files, never touches the kernel.

    parse_paths / parse_text   YAML -> Documents, each checked against schemas/*.json
                               (plus the micro-syntax of ports, addresses and links)
    load_builtin               the pre-defined networks shipped in manifests/
    build_spec                 Documents -> Spec, then the checks that need every document
                               (names, subnets, addresses, links, published ports)

Nothing is reported one at a time: every problem, with its file, line and path, is collected
and raised together in one ManifestError, so a user fixes a manifest in one round trip.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from controller import drivers, names, options, yamlsource
from controller.errors import ManifestError, Problem
from controller.model import (
    Attachment,
    ContainerSpec,
    Document,
    IPAddress,
    IPAMConfig,
    IPNetwork,
    Link,
    NetworkSpec,
    PortSpec,
    Protocol,
    Source,
    Spec,
)

API_VERSION = "netctl/v1"
ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "schemas"
MANIFEST_DIR = ROOT / "manifests"
BUILTIN_FILE = MANIFEST_DIR / "default-networks.yaml"
PREDEFINED = frozenset({"bridge", "host", "none"})
KINDS = {"Network": "network.schema.json", "Container": "container.schema.json"}
OTHER_SCHEMAS = {"HostConfig": "daemon.schema.json"}  # /etc/netctl/daemon.json

OPT_BRIDGE_NAME = options.BRIDGE_NAME
OPT_DEFAULT_BRIDGE = options.DEFAULT_BRIDGE
OPT_ICC = options.ICC
OPT_MASQUERADE = options.MASQUERADE
OPT_HOST_BINDING = options.HOST_BINDING_IPV4
OPT_MTU = options.MTU
IPV6_MIN_MTU = 1280  # RFC 8200; the kernel turns IPv6 off on a link with less
def _exclusive(driver: str) -> bool:
    """host and none: one network each; a container on one joins no other, publishes nothing."""
    d = drivers.policy(driver)
    return d is not None and d.exclusive
_BOOL_WORDS = options.BOOL_WORDS


# --------------------------------------------------------------------------- public API


def parse_paths(paths: Sequence[str]) -> list[Document]:
    """Read files and folders (recursively: *.yaml, *.yml) into validated Documents."""
    problems: list[Problem] = []
    documents: list[Document] = []
    files = list(_manifest_files(paths, problems))
    for file in files:
        text = _read(file, problems)
        if text is not None:
            documents.extend(_parse(text, file, problems))
    _raise_if(problems, [str(p) for p in paths] + files)
    return documents


def parse_text(text: str, file: str) -> list[Document]:
    """Like parse_paths for text already in memory; `file` names it in problems."""
    problems: list[Problem] = []
    documents = _parse(text, file, problems)
    _raise_if(problems, [file])
    return documents


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


def validate_document(doc: Document) -> list[Problem]:
    """Everything that can be checked about one document on its own."""
    if not isinstance(doc.body, Mapping):
        message = f"a manifest must be a mapping (apiVersion, kind, metadata, spec), got {_show(doc.body)}"
        return [_problem(doc, "", message)]
    kind = doc.body.get("kind")
    validator = _validators().get(kind) if isinstance(kind, str) else None
    if validator is None:
        return list(_envelope_problems(doc))
    problems = _schema_problems(validator, doc)
    if kind == "Container":
        problems += _port_object_problems(doc, {p.path for p in problems})
    return problems


# --------------------------------------------------------------------------- files and YAML


def _manifest_files(paths: Sequence[str], problems: list[Problem]) -> Iterator[str]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from (str(f) for f in _walk(path))
        elif path.exists():
            yield raw  # named explicitly: read whatever its extension
        else:
            problems.append(Problem(raw, 0, "", "no such file or directory"))


def _walk(folder: Path) -> list[Path]:
    """Manifests under a folder, sorted; hidden files/folders and editor leftovers skipped."""
    found: list[Path] = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(top) / n for n in files if _is_manifest_name(n))
    return sorted(found, key=lambda f: f.relative_to(folder).parts)


def _is_manifest_name(name: str) -> bool:
    if name.startswith((".", "#")) or name.endswith(("~", ".swp", ".swo", ".swx")):
        return False
    return name.endswith((".yaml", ".yml"))


def _read(file: str, problems: list[Problem]) -> str | None:
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        problems.append(Problem(file, 0, "", "no such file or directory"))
        return None
    except OSError as exc:
        problems.append(Problem(file, 0, "", (exc.strerror or str(exc)).lower()))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(file, line, "", f"not UTF-8 text ({exc.reason})"))
        return None


def _parse(text: str, file: str, problems: list[Problem]) -> list[Document]:
    yaml_documents, issues = yamlsource.load_all(text)
    problems.extend(Problem(file, i.line, i.path, i.message) for i in issues)
    documents = [_document(y, file) for y in yaml_documents]
    for doc in documents:
        problems.extend(validate_document(doc))
    return documents


def _document(parsed: yamlsource.YamlDocument, file: str) -> Document:
    body = parsed.data
    kind = name = ""
    if isinstance(body, dict):
        kind = body["kind"] if isinstance(body.get("kind"), str) else ""
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
            name = metadata["name"]
    return Document(kind, name, body, Source(file, parsed.line), parsed.lines)


@functools.cache
def _builtin_documents() -> tuple[Document, ...]:
    return tuple(parse_paths([str(BUILTIN_FILE)]))


# --------------------------------------------------------------------------- problems


def _problem(doc: Document, path: str, message: str) -> Problem:
    return Problem(doc.source.file, _line(doc, path), path, message)


problem_at = _problem  # for checks made above the loader (pipeline: needs a cluster store)


def _line(doc: Document, path: str) -> int:
    return yamlsource.line_of(doc.lines, path, default=doc.source.line)


def _place(doc: Document, path: str) -> str:
    """`file:line` of a node, for messages that name a second place."""
    return str(Source(doc.source.file, _line(doc, path)))


def _raise_if(problems: list[Problem], files: Sequence[str]) -> None:
    if not problems:
        return
    rank: dict[str, int] = {}
    for file in [*files, *(p.file for p in problems)]:
        rank.setdefault(file, len(rank))
    unique = list(dict.fromkeys(problems))  # the same node may be reached twice via aliases
    raise ManifestError(sorted(unique, key=lambda p: (rank[p.file], p.line)))


def _show(value: object) -> str:
    """A value as a message shows it: scalars literally, collections by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    return str(value)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- JSON Schema


@functools.cache
def _validators() -> dict[str, Any]:
    checker = _format_checker()
    base = jsonschema.Draft202012Validator
    validator_class = jsonschema.validators.extend(
        base,
        {"pattern": _pattern_keyword},
        # JSON Schema counts 80.0 as an integer; a port written 80.0 is a mistake, not 80
        type_checker=base.TYPE_CHECKER.redefine("integer", lambda _checker, value: _is_int(value)),
    )
    validators: dict[str, Any] = {}
    for kind, filename in {**KINDS, **OTHER_SCHEMAS}.items():
        schema = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
        validators[kind] = validator_class(schema, format_checker=checker)
    return validators


def parse_config(text: str, file: str, schema_kind: str) -> Document:
    """A configuration file (JSON or YAML) checked against one of OTHER_SCHEMAS, problems
    reported as a manifest's are (file, line, JSON path)."""
    problems: list[Problem] = []
    parsed, issues = yamlsource.load_all(text)
    problems.extend(Problem(file, i.line, i.path, i.message) for i in issues)
    if not problems and len(parsed) != 1:
        problems.append(Problem(file, 0, "", "expected one JSON object"))
    if problems:
        raise ManifestError(problems)
    doc = Document(schema_kind, file, parsed[0].data, Source(file, parsed[0].line), parsed[0].lines)
    problems = _schema_problems(_validators()[schema_kind], doc)
    if problems:
        raise ManifestError(problems)
    return doc


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """`pattern` with ECMA-262's `$` (end of string): Python's `$` also matches before a
    trailing newline, which would let "web\n" through as a name."""
    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))


def _envelope_problems(doc: Document) -> Iterator[Problem]:
    """A document whose kind we do not know: say so, and check what every kind shares."""
    body = doc.body
    kind = body.get("kind")
    if kind is None:
        yield _problem(doc, "", "missing required field 'kind' (Network or Container)")
    else:
        hint = _did_you_mean(kind, KINDS) if isinstance(kind, str) else ""
        yield _problem(doc, "kind", f"unknown kind {_show(kind)}: expected Network or Container{hint}")
    if body.get("apiVersion") != API_VERSION:
        yield _problem(doc, "apiVersion", f"expected {API_VERSION!r}, got {_show(body.get('apiVersion'))}")
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping) or "name" not in metadata:
        yield _problem(doc, "metadata", "missing required field 'name'")


def _schema_problems(validator: Any, doc: Document) -> list[Problem]:
    errors = _without_noise(list(validator.iter_errors(doc.body)))
    return [p for e in errors for p in _error_problems(doc, e)]


def _without_noise(errors: list[Any]) -> list[Any]:
    """One error per node: a wrong type says it all (the if/then/else branches for the
    other types would only repeat it), and missing fields are reported together."""
    typed = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    seen: set[tuple[tuple[Any, ...], str]] = set()
    kept: list[Any] = []
    for error in sorted(errors, key=lambda e: len(e.absolute_schema_path)):  # outermost first
        node = tuple(error.absolute_path)
        if node in typed and error.validator != "type":
            continue
        if error.validator in ("type", "required"):
            if (node, error.validator) in seen:
                continue
            seen.add((node, error.validator))
        kept.append(error)
    return kept


def _error_problems(doc: Document, error: Any) -> list[Problem]:
    path = _json_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        return [
            _problem(doc, yamlsource.child_path(path, k), f"unknown field {k!r}{_did_you_mean(k, allowed)}")
            for k in extra
        ]
    return [_problem(doc, path, _schema_message(error))]


def _json_path(parts: Iterable[Any]) -> str:
    path = ""
    for part in parts:
        path = yamlsource.child_path(path, part)
    return path


_PATTERN_HINTS = {
    "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$": "name: use letters, digits, '_', '.' and '-', "
    "starting with a letter or digit",
    "^[a-z0-9][a-z0-9_.-]*$": "driver name: use lowercase letters, digits, '_', '.' and '-'",
    "^[A-Za-z0-9][A-Za-z0-9_.:-]*$": "resolv.conf option: use letters, digits, '_', '.', ':' and '-'",
    "^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$":
    "hostname: use dot-separated labels of letters, digits and '-', at most 63 characters each",
}
_REQUIRED_HINTS = {"hostPort": ": a host port is required (ephemeral host ports are not supported yet)"}
_TYPE_NAMES = {"object": "mapping", "array": "list", "integer": "integer", "string": "string"}


def _schema_message(error: Any) -> str:
    """jsonschema's message, said the way a YAML author reads it."""
    validator, value, instance = error.validator, error.validator_value, error.instance
    if validator == "type":
        types = [value] if isinstance(value, str) else list(value)
        names = [repr(_TYPE_NAMES.get(t, t)) for t in types]
        expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        hint = " (write true or false)" if types == ["boolean"] and isinstance(instance, str) else ""
        return f"{_show(instance)} is not of type {expected}{hint}"
    if validator == "required":
        missing = [p for p in value if p not in instance]
        hints = "".join(_REQUIRED_HINTS.get(p, "") for p in missing)
        fields = ", ".join(repr(p) for p in missing)
        return f"missing required field{'s' if len(missing) > 1 else ''} {fields}{hints}"
    if validator == "const":
        return f"expected {_show(value)}, got {_show(instance)}"
    if validator == "enum":
        return f"{_show(instance)} is not one of {', '.join(_show(v) for v in value)}"
    if validator == "pattern" and value in _PATTERN_HINTS:
        return f"{_show(instance)} is not a valid {_PATTERN_HINTS[value]}"
    if validator == "maxLength":
        return f"{_show(instance)} is too long (at most {value} characters)"
    if validator == "minimum":
        return f"{instance} is less than the minimum of {value}"
    if validator == "maximum":
        return f"{instance} is greater than the maximum of {value}"
    if validator == "minItems":
        return "must not be empty" if value == 1 else f"needs at least {value} items"
    if validator == "format" and error.cause is not None:
        return str(error.cause)
    return str(error.message)


def _format_checker() -> Any:
    """The schemas' string formats; each check raises ValueError with the user's message."""
    checker = jsonschema.FormatChecker(formats=())
    formats: dict[str, Callable[[str], object]] = {
        "ip-address": parse_ip,
        "ipv4": lambda s: parse_ip(s, version=4),
        "ipv6": lambda s: parse_ip(s, version=6),
        "ip-network": parse_subnet,
        "ip-interface": parse_interface,
        "port-mapping": parse_port_mapping,
        "port-range": parse_port_range,
        "exposed-port": parse_exposed,
        "link": parse_link,
        "extra-host": parse_extra_host,
        "domain-name": parse_domain_name,
    }
    accepts_int = {"port-mapping", "exposed-port"}  # YAML `- 80`; other ints are type errors
    for name, parse in formats.items():
        checker.checks(name, raises=ValueError)(_format_check(parse, name in accepts_int))
    return checker


def _format_check(parse: Callable[[str], object], accepts_int: bool) -> Callable[[object], bool]:
    def check(instance: object) -> bool:
        if isinstance(instance, str) or (accepts_int and _is_int(instance)):
            parse(str(instance))
        return True  # other types are the "type" keyword's business

    return check


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- string syntax
#
# Each parser takes what the user wrote and raises ValueError with a message for them.


_PORT_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")  # not \d: it also matches non-ASCII digits
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def parse_ip(text: str, version: int | None = None) -> IPAddress:
    family = {4: "IPv4 ", 6: "IPv6 "}.get(version or 0, "IP ")
    try:
        address = ipaddress.ip_address(text) if "%" not in text else None
    except ValueError:
        address = None
    if address is None or (version is not None and address.version != version):
        raise ValueError(f"{text!r} is not a valid {family}address")
    return address


def parse_interface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An address with its prefix (`172.26.0.1/16`), as Docker's `bip`."""
    if "/" in text:
        try:
            return ipaddress.ip_interface(text)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not an address with a prefix (e.g. 172.26.0.1/16)")


def parse_subnet(text: str) -> IPNetwork:
    """A CIDR with no host bits set, as Docker requires (`172.28.0.0/16`, not `172.28.5.1/16`)."""
    try:
        network = ipaddress.ip_network(text, strict=False) if "/" in text else None
    except ValueError:
        network = None
    if network is None:
        raise ValueError(f"{text!r} is not a valid subnet in CIDR notation (e.g. 172.28.0.0/16)")
    if str(network) != text and ipaddress.ip_interface(text).ip != network.network_address:
        raise ValueError(f"invalid subnet {text}: it should be {network}")
    return network


def parse_port_range(text: str) -> range:
    """`80` or `9000-9002`; every port in 1..65535."""
    match = _PORT_RANGE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a valid port or port range (e.g. 80 or 9000-9002)")
    first = _port_number(match.group(1))
    last = _port_number(match.group(2)) if match.group(2) else first
    if last < first:
        raise ValueError(f"invalid port range {text}: {first} is greater than {last}")
    return range(first, last + 1)


def _port_number(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    if len(significant) > 5 or int(significant) > 65535:  # check length first: int() of huge strings fails
        raise ValueError(f"{significant} is greater than the maximum of 65535")
    if significant == "0":
        raise ValueError("0 is less than the minimum of 1")
    return int(significant)


def parse_protocol(text: str) -> Protocol:
    try:
        return Protocol(text)
    except ValueError:
        raise ValueError(f"unknown protocol {text!r}: expected tcp, udp or sctp") from None


def parse_port_mapping(text: str) -> list[PortSpec]:
    """Docker's `-p`: `[[hostIP:]hostPort:]containerPort[/protocol]`, ports or ranges.

    `[::1]:8080:80` brackets an IPv6 host IP. Ranges expand to one PortSpec per port and
    must have the same length on both sides. A host port is required (for now).
    """
    mapping, slash, proto = text.partition("/")
    protocol = parse_protocol(proto) if slash else Protocol.TCP
    host_ip, host, container = _split_mapping(mapping, text)
    container_ports = parse_port_range(container)
    if not host:
        raise ValueError(
            f'{text!r} has no host port: a host port is required (e.g. "{container_ports[0]}:{container}")'
        )
    host_ports = parse_port_range(host)
    if len(host_ports) != len(container_ports):
        raise ValueError(
            f"host port range {host} and container port range {container} must have the same length"
        )
    return [PortSpec(c, h, host_ip, protocol) for h, c in zip(host_ports, container_ports, strict=True)]


def _split_mapping(mapping: str, text: str) -> tuple[str | None, str, str]:
    """-> (host IP or None, host port text or "", container port text)."""
    if mapping.startswith("["):
        address, bracket, rest = mapping[1:].partition("]")
        parts = rest.split(":")
        if not bracket or len(parts) != 3 or parts[0]:
            raise ValueError(f"{text!r} is not a valid port mapping (e.g. [::1]:8080:80)")
        return str(parse_ip(address)), parts[1], parts[2]
    parts = mapping.split(":")
    if len(parts) > 3:
        raise ValueError(f"{text!r}: write an IPv6 host IP in brackets, e.g. [::1]:8080:80")
    if len(parts) == 3:
        host_ip = str(parse_ip(parts[0])) if parts[0] else None
        return host_ip, parts[1], parts[2]
    return (None, parts[0], parts[1]) if len(parts) == 2 else (None, "", parts[0])


def parse_exposed(text: str) -> list[tuple[int, Protocol]]:
    """`80`, `53/udp`, `8000-8010/tcp`."""
    ports, slash, proto = text.partition("/")
    protocol = parse_protocol(proto) if slash else Protocol.TCP
    return [(port, protocol) for port in parse_port_range(ports)]


def parse_link(text: str) -> Link:
    """`name:alias` or `name` (the alias is then the name)."""
    name, _, alias = text.partition(":")
    alias = alias or name
    if not (_NAME.fullmatch(name) and _NAME.fullmatch(alias)):
        raise ValueError(f'{text!r} is not a valid link: expected "name" or "name:alias"')
    return Link(name, alias)


_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def parse_domain_name(text: str) -> str:
    """A DNS name as resolv.conf and hosts files carry it: no spaces, no `#`, no control bytes;
    dot-separated labels of at most 63 characters (a final dot allowed), 253 in all."""
    labels = text[:-1].split(".") if text.endswith(".") and len(text) > 1 else text.split(".")
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{text!r} is not a valid DNS name: dot-separated labels of letters, digits, '_' "
            "and '-', at most 63 characters each and 253 in all"
        )
    return text


def parse_extra_host(text: str) -> tuple[str, str]:
    """`host:ip`; the IP may be IPv6 (with or without brackets), so split on the first colon."""
    host, colon, address = text.partition(":")
    if not colon or not host or any(ch.isspace() for ch in host):
        raise ValueError(f'{text!r} is not a valid extra host: expected "host:ip"')
    try:
        parse_domain_name(host)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid extra host: {exc}") from None
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    return host, str(parse_ip(address))


# --------------------------------------------------------------------------- typed conversion


@dataclass
class _Network:
    doc: Document
    spec: NetworkSpec


@dataclass
class _Container:
    doc: Document
    spec: ContainerSpec
    port_items: tuple[int, ...]  # for each PortSpec, its index in spec.ports (ranges expand)


def _spec_body(doc: Document) -> Mapping[str, Any]:
    spec = doc.body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _labels(doc: Document) -> dict[str, str]:
    metadata = doc.body.get("metadata")
    return _strings(metadata.get("labels") if isinstance(metadata, Mapping) else None)


def _strings(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Option/label values as Docker stores them: YAML `true`/`1500` become "true"/"1500"."""
    if not values:
        return {}
    return {k: _option_text(v) for k, v in values.items()}


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _network(doc: Document, builtin: bool) -> _Network:
    spec = _spec_body(doc)
    ipam = spec.get("ipam") or {}
    network = NetworkSpec(
        name=doc.name,
        driver=spec.get("driver", "bridge"),
        ipam=tuple(_ipam_config(c) for c in ipam.get("config") or ()),
        internal=bool(spec.get("internal", False)),
        enable_ipv6=bool(spec.get("enableIPv6", False)),
        attachable=bool(spec.get("attachable", False)),
        options=_strings(spec.get("options")),
        labels=_labels(doc),
        source=doc.source,
        builtin=builtin,
    )
    return _Network(doc, network)


def _ipam_config(config: Mapping[str, Any]) -> IPAMConfig:
    def address(text: str | None) -> str | None:
        return str(ipaddress.ip_address(text)) if text else None

    def subnet(text: str | None) -> str | None:
        return str(ipaddress.ip_network(text)) if text else None

    aux = config.get("auxAddresses") or {}
    return IPAMConfig(
        subnet=subnet(config.get("subnet")),
        gateway=address(config.get("gateway")),
        ip_range=subnet(config.get("ipRange")),
        aux_addresses={k: str(ipaddress.ip_address(v)) for k, v in aux.items()},
    )


def _container(doc: Document) -> _Container:
    spec = _spec_body(doc)
    ports: list[PortSpec] = []
    items: list[int] = []
    for i, item in enumerate(spec.get("ports") or ()):
        expanded = parse_port_mapping(_port_text(item))
        ports.extend(expanded)
        items.extend([i] * len(expanded))
    container = ContainerSpec(
        name=doc.name,
        networks=tuple(_attachment(n) for n in spec.get("networks") or ("bridge",)),
        hostname=spec.get("hostname"),
        ports=tuple(ports),
        expose=tuple(p for e in spec.get("expose") or () for p in parse_exposed(str(e))),
        links=tuple(parse_link(link) for link in spec.get("links") or ()),
        dns=tuple(str(parse_ip(a)) for a in spec.get("dns") or ()),
        dns_search=tuple(spec.get("dnsSearch") or ()),
        dns_options=tuple(spec.get("dnsOptions") or ()),
        extra_hosts=tuple(parse_extra_host(h) for h in spec.get("extraHosts") or ()),
        labels=_labels(doc),
        source=doc.source,
    )
    return _Container(doc, container, tuple(items))


def _port_object_problems(doc: Document, invalid: set[str]) -> list[Problem]:
    """What the schema cannot say about a port object: both ranges must have one length.
    Checked for every item the schema accepted, even when other parts of the document failed."""
    ports = _spec_body(doc).get("ports")
    problems: list[Problem] = []
    for i, item in enumerate(ports if isinstance(ports, list) else ()):
        path = f"spec.ports[{i}]"
        if not isinstance(item, Mapping) or any(
            p == path or p.startswith((f"{path}.", f"{path}[")) for p in invalid
        ):
            continue
        try:
            parse_port_mapping(_port_text(item))
        except ValueError as exc:
            problems.append(_problem(doc, path, str(exc)))
    return problems


def _port_text(item: object) -> str:
    """The object form written as Docker's string form, so both share one parser."""
    if not isinstance(item, Mapping):
        return str(item)
    host_ip = item.get("hostIP")
    ip = "" if host_ip is None else f"[{host_ip}]:" if ":" in host_ip else f"{host_ip}:"
    return f"{ip}{item['hostPort']}:{item['containerPort']}/{item.get('protocol', 'tcp')}"


def _attachment(item: str | Mapping[str, Any]) -> Attachment:
    if isinstance(item, str):
        return Attachment(item)
    v4, v6 = item.get("ipv4Address"), item.get("ipv6Address")
    return Attachment(
        network=item["name"],
        ipv4_address=str(parse_ip(v4)) if v4 else None,
        ipv6_address=str(parse_ip(v6)) if v6 else None,
        aliases=tuple(item.get("aliases") or ()),
    )


def _accepted_networks(networks: list[_Network]) -> list[_Network]:
    """User networks that are not attempts to redefine a pre-defined one."""
    return [n for n in networks if n.spec.builtin or n.spec.name not in _predefined(networks)]


def _predefined(networks: list[_Network]) -> frozenset[str]:
    return PREDEFINED | {n.spec.name for n in networks if n.spec.builtin}


# --------------------------------------------------------------------------- checks across documents


def _check_all(networks: list[_Network], containers: list[_Container]) -> Iterator[Problem]:
    yield from _check_predefined(networks)
    accepted = _accepted_networks(networks)
    yield from _check_duplicates(accepted)
    yield from _check_duplicates(containers)
    by_name = {n.spec.name: n for n in reversed(accepted)}  # the first definition wins
    for network in accepted:
        yield from _check_network(network)
    yield from _check_subnet_overlaps(accepted)
    yield from _check_bridge_names(accepted)
    for container in containers:
        yield from _check_attachments(container, by_name)
    yield from _check_static_addresses(containers, by_name)
    yield from _check_links(containers, by_name)
    yield from _check_ports(containers, by_name)


def _check_predefined(networks: list[_Network]) -> Iterator[Problem]:
    predefined = _predefined(networks)
    for n in networks:
        if n.spec.builtin:
            continue
        if n.spec.name in predefined:
            yield _problem(
                n.doc, "metadata.name", f"{n.spec.name} is a pre-defined network and cannot be redefined"
            )
        elif _exclusive(n.spec.driver):
            yield _problem(n.doc, "spec.driver", f"only one instance of {n.spec.driver!r} network is allowed")


def _check_duplicates(objects: Sequence[_Network | _Container]) -> Iterator[Problem]:
    first: dict[str, Document] = {}
    for obj in objects:
        earlier = first.setdefault(obj.spec.name, obj.doc)
        if earlier is not obj.doc:
            yield _problem(
                obj.doc,
                "metadata.name",
                f"duplicate {obj.doc.kind} {obj.spec.name!r}: already defined at {earlier.source}",
            )


def _check_network(n: _Network) -> Iterator[Problem]:
    if drivers.policy(n.spec.driver) is None:
        yield _problem(n.doc, "spec.driver", drivers.unknown_driver_message(n.spec.driver))
        return
    for j, config in enumerate(n.spec.ipam):
        yield from _check_ipam_config(n, j, config)
    families = {ipaddress.ip_network(c.subnet).version for c in n.spec.ipam if c.subnet}
    if n.spec.enable_ipv6 and 6 not in families:
        yield _problem(n.doc, "spec.enableIPv6", "enableIPv6 requires an IPv6 subnet in ipam.config")
    yield from _check_options(n)


def _check_ipam_config(n: _Network, j: int, config: IPAMConfig) -> Iterator[Problem]:
    base = f"spec.ipam.config[{j}]"
    if config.subnet is None:
        if config.gateway or config.ip_range or config.aux_addresses:
            yield _problem(n.doc, base, "gateway, ipRange and auxAddresses need a subnet in the same entry")
        return
    subnet = ipaddress.ip_network(config.subnet)
    problem = _subnet_problem(subnet)
    if problem:
        yield _problem(n.doc, f"{base}.subnet", problem)
        return
    if subnet.version == 6 and not n.spec.enable_ipv6:
        yield _problem(n.doc, f"{base}.subnet", f"IPv6 subnet {subnet} requires enableIPv6: true")
    if config.gateway and ipaddress.ip_address(config.gateway) not in subnet:
        yield _problem(n.doc, f"{base}.gateway", f"gateway {config.gateway} is not in subnet {subnet}")
    if config.ip_range:
        ip_range = ipaddress.ip_network(config.ip_range)
        if not _inside(ip_range, subnet):
            yield _problem(n.doc, f"{base}.ipRange", f"ipRange {ip_range} is not inside subnet {subnet}")
    for name, address in config.aux_addresses.items():
        if ipaddress.ip_address(address) not in subnet:
            path = yamlsource.child_path(f"{base}.auxAddresses", name)
            yield _problem(n.doc, path, f"auxAddress {name} ({address}) is not in subnet {subnet}")


# Ranges a network cannot take: the host would route them to a bridge (loopback, "this
# network"), they are not unicast (multicast, 240/4 and the limited broadcast), or they are
# the host's own (IPv6 link-local, v4-mapped).
_FORBIDDEN_SUBNETS = {
    ipaddress.ip_network(text): why
    for text, why in [
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4, with 255.255.255.255)"),
        ("::/127", "the unspecified and loopback addresses (::, ::1)"),
        ("::ffff:0:0/96", "IPv4-mapped (::ffff:0:0/96)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("ff00::/8", "multicast (ff00::/8)"),
    ]
}
# A gateway and at least one container: /30 (IPv4), /126 (IPv6) at the smallest.
_LONGEST_PREFIX = {4: 30, 6: 126}


def _subnet_problem(subnet: IPNetwork) -> str | None:
    for forbidden, why in _FORBIDDEN_SUBNETS.items():
        if subnet.version == forbidden.version and subnet.overlaps(forbidden):
            return f"subnet {subnet} overlaps {why}: it cannot be a container network"
    longest = _LONGEST_PREFIX[subnet.version]
    if subnet.prefixlen > longest:
        return (f"subnet {subnet} is too small: a network needs room for a gateway and a "
                f"container (/{longest} at the smallest)")
    return None


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    return (
        inner.version == outer.version
        and int(outer.network_address) <= int(inner.network_address)
        and int(inner.broadcast_address) <= int(outer.broadcast_address)
    )


def _check_options(n: _Network) -> Iterator[Problem]:
    options = n.spec.options

    def path(key: str) -> str:
        return yamlsource.child_path("spec.options", key)

    if OPT_BRIDGE_NAME in options:
        # netctl's own documents (the default networks, the overlay driver's gateway bridge)
        # may use the names netctl gives its devices
        own = n.spec.builtin or n.doc.source.file.startswith("netctl:")
        problem = names.interface_name_problem(options[OPT_BRIDGE_NAME], generated_ok=own)
        if problem:
            yield _problem(n.doc, path(OPT_BRIDGE_NAME), problem)
    if OPT_MTU in options:
        mtu = options[OPT_MTU]
        if not (re.fullmatch(r"[0-9]{1,6}", mtu) and 68 <= int(mtu) <= 65535):
            yield _problem(n.doc, path(OPT_MTU), f"MTU must be an integer between 68 and 65535, got {mtu!r}")
        elif n.spec.enable_ipv6 and int(mtu) < IPV6_MIN_MTU:
            yield _problem(n.doc, path(OPT_MTU), f"IPv6 needs an MTU of at least {IPV6_MIN_MTU}, got {mtu}")
    for key in (OPT_ICC, OPT_MASQUERADE, OPT_DEFAULT_BRIDGE):
        if key in options and options[key].lower() not in _BOOL_WORDS:
            yield _problem(n.doc, path(key), f"must be true or false, got {options[key]!r}")
    if OPT_HOST_BINDING in options:
        try:
            parse_ip(options[OPT_HOST_BINDING], version=4)
        except ValueError as exc:
            yield _problem(n.doc, path(OPT_HOST_BINDING), str(exc))


def _check_subnet_overlaps(networks: list[_Network]) -> Iterator[Problem]:
    seen: list[tuple[IPNetwork, _Network, str]] = []
    for n in networks:
        for j, config in enumerate(n.spec.ipam):
            if config.subnet is None:
                continue
            subnet, path = ipaddress.ip_network(config.subnet), f"spec.ipam.config[{j}].subnet"
            for other, owner, other_path in seen:
                if subnet.overlaps(other):
                    yield _problem(
                        n.doc,
                        path,
                        f"subnet {subnet} overlaps with subnet {other} of network "
                        f"{owner.spec.name} ({_place(owner.doc, other_path)})",
                    )
            seen.append((subnet, n, path))


def _check_bridge_names(networks: list[_Network]) -> Iterator[Problem]:
    owners: dict[str, _Network] = {}
    for n in networks:
        name = n.spec.options.get(OPT_BRIDGE_NAME)
        if name is None:
            continue
        owner = owners.setdefault(name, n)
        if owner is not n:
            where = _place(owner.doc, yamlsource.child_path("spec.options", OPT_BRIDGE_NAME))
            yield _problem(
                n.doc,
                yamlsource.child_path("spec.options", OPT_BRIDGE_NAME),
                f"bridge name {name!r} is already used by network {owner.spec.name} ({where})",
            )


def _is_default_bridge(n: _Network) -> bool:
    return n.spec.builtin and options.is_true(n.spec.options.get(OPT_DEFAULT_BRIDGE), False)


def _check_attachments(c: _Container, networks: Mapping[str, _Network]) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, attachment in enumerate(c.spec.networks):
        path, name = f"spec.networks[{i}]", attachment.network
        if name in seen:
            yield _problem(c.doc, path, f"network {name} is listed twice (also spec.networks[{seen[name]}])")
        seen.setdefault(name, i)
        network = networks.get(name)
        if network is None:
            yield _problem(c.doc, path, f"network {name} not found{_did_you_mean(name, networks)}")
        elif attachment.aliases and _is_default_bridge(network):
            yield _problem(
                c.doc,
                f"{path}.aliases",
                "network-scoped alias is supported only for containers in user defined networks",
            )
        elif _exclusive(network.spec.driver) and len(c.spec.networks) > 1:
            yield _problem(
                c.doc,
                "spec.networks",
                f"a container on network {name} cannot be connected to other networks",
            )


def _check_static_addresses(
    containers: list[_Container], networks: Mapping[str, _Network]
) -> Iterator[Problem]:
    taken: dict[tuple[str, IPAddress], tuple[_Container, str]] = {}
    for c in containers:
        for i, attachment in enumerate(c.spec.networks):
            network = networks.get(attachment.network)
            if network is None:
                continue  # reported by _check_attachments
            addresses = {"ipv4Address": attachment.ipv4_address, "ipv6Address": attachment.ipv6_address}
            for key, text in addresses.items():
                if text is None:
                    continue
                path = f"spec.networks[{i}].{key}"
                address = ipaddress.ip_address(text)
                problem = _static_address_problem(network, address)
                if problem is None:
                    holder = taken.setdefault((network.spec.name, address), (c, path))
                    if holder[0] is not c or holder[1] != path:
                        problem = (
                            f"address {address} on network {network.spec.name} is already assigned "
                            f"to container {holder[0].spec.name} ({_place(holder[0].doc, holder[1])})"
                        )
                if problem:
                    yield _problem(c.doc, path, problem)


def _static_address_problem(n: _Network, address: IPAddress) -> str | None:
    """Why `address` cannot be a container's static address on `n` (Docker's rules)."""
    name = n.spec.name
    if _is_default_bridge(n):
        return "user specified IP address is supported on user defined networks only"
    if address.version == 6 and not n.spec.enable_ipv6:
        return f"an IPv6 address needs enableIPv6: true on network {name}"
    configs = [
        c for c in n.spec.ipam if c.subnet and ipaddress.ip_network(c.subnet).version == address.version
    ]
    if not configs:
        return (
            "user specified IP address is supported only when connecting to networks "
            "with user configured subnets"
        )
    config = next((c for c in configs if address in ipaddress.ip_network(c.subnet or "")), None)
    if config is None:
        return f"no configured subnet or ip-range contain the IP address {address}"
    # ipRange limits dynamic allocation only (Docker): a static address may sit outside it,
    # which is how people keep static and dynamic addresses apart.
    subnet = ipaddress.ip_network(config.subnet or "")
    if address == _gateway(n, config, subnet):
        return f"address {address} is the gateway of network {name}"
    for aux_name, aux in config.aux_addresses.items():
        if address == ipaddress.ip_address(aux):
            return f"address {address} is reserved as auxAddress {aux_name} of network {name}"
    if address == subnet.network_address or (
        subnet.version == 4 and subnet.prefixlen < 31 and address == subnet.broadcast_address
    ):
        return f"address {address} is not usable: it is the network or broadcast address of {subnet}"
    return None


def _gateway(n: _Network, config: IPAMConfig, subnet: IPNetwork) -> IPAddress | None:
    """The explicit gateway, else the one a bridge takes by default (the first address)."""
    if config.gateway:
        return ipaddress.ip_address(config.gateway)
    d = drivers.policy(n.spec.driver)
    if d is not None and d.routed and subnet.num_addresses > 2:
        return subnet.network_address + 1
    return None


def _check_links(containers: list[_Container], networks: Mapping[str, _Network]) -> Iterator[Problem]:
    names = {c.spec.name for c in containers}
    for c in containers:
        on_host = any(
            (n := networks.get(a.network)) is not None and (d := drivers.policy(n.spec.driver)) is not None
            and d.host_namespace for a in c.spec.networks
        )
        for i, link in enumerate(c.spec.links):
            path = f"spec.links[{i}]"
            if on_host:
                message = "conflicting options: host type networking can't be used with links"
                yield _problem(c.doc, path, message)
            elif link.container == c.spec.name:
                yield _problem(c.doc, path, "a container cannot link to itself")
            elif link.container not in names:
                hint = _did_you_mean(link.container, names)
                yield _problem(c.doc, path, f"link to unknown container {link.container}{hint}")


# One published host port: the addresses it binds, and where it was written.
@dataclass(frozen=True)
class _Binding:
    addresses: tuple[IPAddress, ...]
    port: int
    protocol: Protocol
    container: _Container
    item: int

    def clashes(self, other: _Binding) -> bool:
        return any(_addresses_overlap(a, b) for a in self.addresses for b in other.addresses)

    def describe(self, address: IPAddress) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{host}:{self.port}/{self.protocol.value}"


def _addresses_overlap(a: IPAddress, b: IPAddress) -> bool:
    """0.0.0.0 takes the port on every IPv4 address, :: on every IPv6 address."""
    return a.version == b.version and (a == b or a.is_unspecified or b.is_unspecified)


def _check_ports(containers: list[_Container], networks: Mapping[str, _Network]) -> Iterator[Problem]:
    bindings: dict[tuple[int, Protocol], list[_Binding]] = {}
    reported: set[tuple[int, int, int, int]] = set()  # (container, item) pairs, once per pair
    for c in containers:
        if not c.spec.ports:
            continue
        nets = [n for a in c.spec.networks if (n := networks.get(a.network)) is not None]
        problem = _publish_problem(nets)
        if problem:
            yield _problem(c.doc, "spec.ports", problem)
            continue
        for port, item in zip(c.spec.ports, c.port_items, strict=True):
            assert port.host_port is not None  # load requires host ports
            binding = _Binding(_bind_addresses(port, nets), port.host_port, port.protocol, c, item)
            same_port = bindings.setdefault((binding.port, binding.protocol), [])
            for other in same_port:
                pair = (id(c), item, id(other.container), other.item)
                if binding.clashes(other) and pair not in reported:
                    reported.add(pair)
                    yield _port_conflict(binding, other)
            same_port.append(binding)


def _publish_problem(nets: list[_Network]) -> str | None:
    for n in nets:
        if _exclusive(n.spec.driver):
            return f"cannot publish ports on network {n.spec.name} (driver {n.spec.driver})"
    if nets and all(n.spec.internal for n in nets):
        return "cannot publish ports on an internal network"
    return None


def _bind_addresses(port: PortSpec, nets: list[_Network]) -> tuple[IPAddress, ...]:
    """Where a published port listens: its host IP, else the network's host_binding_ipv4,
    else every address of both families (Docker binds 0.0.0.0 and ::)."""
    if port.host_ip:
        return (ipaddress.ip_address(port.host_ip),)
    gateway_net = next((n for n in nets if not n.spec.internal), None)
    binding = gateway_net.spec.options.get(OPT_HOST_BINDING) if gateway_net else None
    if binding and binding != "0.0.0.0":
        try:
            return (parse_ip(binding, version=4),)
        except ValueError:
            pass  # reported by _check_options
    return (ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv6Address("::"))


def _port_conflict(binding: _Binding, other: _Binding) -> Problem:
    address = next(a for a in binding.addresses for b in other.addresses if _addresses_overlap(a, b))
    other_path = f"spec.ports[{other.item}]"
    return _problem(
        binding.container.doc,
        f"spec.ports[{binding.item}]",
        f"host port {binding.describe(address)} is already published by container "
        f"{other.container.spec.name} ({_place(other.container.doc, other_path)} {other_path})",
    )
