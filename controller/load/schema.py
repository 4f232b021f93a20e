"""JSON Schema validation of one document, with messages people read."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from controller import yamlsource
from controller.errors import ManifestError, Problem
from controller.load.build import _port_object_problems
from controller.load.common import API_VERSION, KINDS, OTHER_SCHEMAS, SCHEMA_DIR
from controller.load.problems import _did_you_mean, _problem, _show
from controller.load.syntax import (
    parse_domain_name,
    parse_exposed,
    parse_extra_host,
    parse_interface,
    parse_ip,
    parse_link,
    parse_port_mapping,
    parse_port_range,
    parse_subnet,
)
from controller.model import (
    Document,
    Source,
)

# --------------------------------------------------------------------------- JSON Schema


@functools.cache
def _validators() -> dict[str, Any]:
    import jsonschema  # here, not at import: ~50 ms that `netctl --help` does not need

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
    import jsonschema

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
    import jsonschema

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


# Bodies found valid in this process, by digest: an apply validates the file it parsed and
# then every document of the spec again (most come from the store), and jsonschema costs far
# more than hashing the text. Only valid bodies are kept: problems name their file and line.
_VALID: set[str] = set()
_VALID_MAX = 20_000


def _ports_checked_apart(doc: Document) -> Document:
    """jsonschema spends ~40 us on each published port; a string port's schema is its
    format alone (tests/unit/test_load.py holds the schema to that), so when every one
    parses, the rest of the document is validated without them: the same verdict, and
    1,000 ports cost a millisecond. Anything else is left to the schema, for its messages."""
    spec = doc.body.get("spec")
    ports = spec.get("ports") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or not isinstance(ports, list) or not ports:
        return doc
    for item in ports:
        if not isinstance(item, str):
            return doc
        try:
            parse_port_mapping(item)
        except ValueError:
            return doc
    return dataclasses.replace(doc, body={**doc.body, "spec": {**spec, "ports": []}})


def validate_document(doc: Document) -> list[Problem]:
    """Everything that can be checked about one document on its own."""
    if not isinstance(doc.body, Mapping):
        message = f"a manifest must be a mapping (apiVersion, kind, metadata, spec), got {_show(doc.body)}"
        return [_problem(doc, "", message)]
    kind = doc.body.get("kind")
    validator = _validators().get(kind) if isinstance(kind, str) else None
    if validator is None:
        return list(_envelope_problems(doc))
    digest = hashlib.sha256(json.dumps(doc.body, sort_keys=True, default=repr).encode()).hexdigest()
    if digest in _VALID:
        return []
    problems = _schema_problems(validator, _ports_checked_apart(doc) if kind == "Container" else doc)
    if kind == "Container":
        problems += _port_object_problems(doc, {p.path for p in problems})
    if not problems:
        if len(_VALID) >= _VALID_MAX:  # a long-running controller: start again rather than grow
            _VALID.clear()
        _VALID.add(digest)
    return problems
