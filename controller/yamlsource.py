"""YAML with line numbers: every node's line, keyed by its path (`spec.ports[1]`).

PyYAML's constructors drop source positions, so we compose the node graph (which keeps
them) and convert it ourselves. The converter also catches what plain `yaml.safe_load`
lets through silently: duplicate keys, YAML 1.1 sexagesimal ints (`22:22` would be 1342)
and timestamps (kept as the text the user wrote).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

try:  # libyaml is much faster; the pure-Python loader gives the same nodes and marks
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null")}
_MAX_NODES = 100_000  # alias expansion ("billion laughs") must not hang validation
_MAX_DEPTH = 100

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_LAST_SEGMENT = re.compile(r'(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')


def child_path(parent: str, key: str | int) -> str:
    """`spec` + `ports` -> `spec.ports`; + 1 -> `spec.ports[1]`; dotted keys are quoted:
    `spec.options["<a dotted key>"]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _SIMPLE_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def parent_path(path: str) -> str | None:
    """The path one level up, or None for the document itself ("")."""
    if not path:
        return None
    match = _LAST_SEGMENT.search(path)
    return path[: match.start()] if match else ""  # no match: a top-level key


def line_of(lines: Mapping[str, int], path: str, default: int = 0) -> int:
    """The line of `path`, else of its nearest ancestor that has one."""
    current: str | None = path
    while current is not None:
        line = lines.get(current)
        if line:
            return int(line)
        current = parent_path(current)
    return default


@dataclass(frozen=True)
class YamlIssue:
    """Something wrong in the YAML itself (not in what it means)."""

    line: int
    path: str
    message: str


@dataclass
class YamlDocument:
    data: Any
    line: int  # where the document's content starts
    lines: dict[str, int] = field(default_factory=dict)


def load_all(text: str) -> tuple[list[YamlDocument], list[YamlIssue]]:
    """Every non-empty document in `text`, with the issues found while reading them.

    A syntax error ends the stream (the parser cannot resynchronise); documents read
    before it are still returned so that their problems are reported too.
    """
    documents: list[YamlDocument] = []
    issues: list[YamlIssue] = []
    nodes = yaml.compose_all(text, Loader=_Loader)
    while True:
        try:
            node = next(nodes)
        except StopIteration:
            break
        except yaml.MarkedYAMLError as exc:
            issues.append(_syntax_issue(exc))
            break
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow
            line = text[: exc.position].count("\n") + 1
            char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
            issues.append(YamlIssue(line, "", f"YAML syntax error: {exc.reason} ({char})"))
            break
        except yaml.YAMLError as exc:  # pragma: no cover - every parser error above is marked
            issues.append(YamlIssue(0, "", f"YAML error: {exc}"))
            break
        if node is None:
            continue
        converter = _Converter()
        data = converter.convert(node, "", 0)
        issues.extend(converter.issues)
        if data is not None:
            documents.append(YamlDocument(data, node.start_mark.line + 1, converter.lines))
    return documents, issues


def _syntax_issue(exc: yaml.MarkedYAMLError) -> YamlIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 0
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    return YamlIssue(line, "", f"YAML syntax error: {problem}{context}")


_YAML12_BOOLS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})


class _Converter:
    """Node graph -> plain Python data, recording each path's line."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.issues: list[YamlIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._count = 0
        self._too_big = False
        self._flattened: set[int] = set()
        self._active: set[int] = set()  # nodes on the current branch: detects recursive aliases

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._count += 1
        if self._count > _MAX_NODES or depth > _MAX_DEPTH:
            if not self._too_big:
                self._issue(node, path, "document is too large or too deeply nested")
            self._too_big = True
            return None
        if id(node) in self._active:
            self._issue(node, path, "recursive YAML alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path, depth)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any] | None:
        if node.tag != f"{_TAG}map":
            self._issue(node, path, f"unsupported YAML tag {node.tag}")
            return None
        if id(node) not in self._flattened:  # an alias revisits a node that is merged already
            self._check_duplicate_keys(node, path)
            self._flattened.add(id(node))
        try:
            self._constructor.flatten_mapping(node)  # resolve `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as exc:
            self._issue(node, path, exc.problem or "invalid merge key")
            return None
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            child = child_path(path, key)
            # a block value starts on the next line; the key's line is where the user looks
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, child, depth + 1)
        return result

    def _sequence(self, node: yaml.SequenceNode, path: str, depth: int) -> list[Any] | None:
        if node.tag != f"{_TAG}seq":
            self._issue(node, path, f"unsupported YAML tag {node.tag}")
            return None
        return [self.convert(item, child_path(path, i), depth + 1) for i, item in enumerate(node.value)]

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        text = str(node.value)
        if node.tag == f"{_TAG}timestamp":
            return text  # `2024-01-01` is a label value, not a date
        if node.tag in (f"{_TAG}int", f"{_TAG}float") and ":" in text:
            return text  # YAML 1.1 base 60: `22:22` is the port mapping the user meant
        if node.tag == f"{_TAG}bool" and text not in _YAML12_BOOLS:
            # YAML 1.1 reads `no`, `yes`, `on`, `off` as booleans (`country: no` would be stored
            # as "false"); YAML 1.2 (and Compose) read them as the words written.
            return text
        if node.tag not in _SCALAR_TAGS:
            self._issue(node, path, f"unsupported YAML tag {node.tag}")
            return None
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            self._issue(node, path, f"invalid scalar {text!r}: {exc}")
            return None

    def _key(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self._issue(node, path, "mapping keys must be plain scalars")
            return None
        value = self._scalar(node, path)
        if value is None and node.tag != f"{_TAG}null":
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return "null" if value is None else str(value)

    def _check_duplicate_keys(self, node: yaml.MappingNode, path: str) -> None:
        seen: dict[str, int] = {}
        for key_node, _ in _own_pairs(node):
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                self.issues.append(
                    YamlIssue(line, child_path(path, key), f"duplicate key (first at line {seen[key]})")
                )
            else:
                seen[key] = line

    def _issue(self, node: yaml.Node, path: str, message: str) -> None:
        self.issues.append(YamlIssue(node.start_mark.line + 1, path, message))


def _own_pairs(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """The pairs written in this mapping, not those merged in with `<<`."""
    for key_node, value_node in node.value:
        if key_node.tag != f"{_TAG}merge":
            yield key_node, value_node
