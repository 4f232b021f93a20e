"""Files and YAML: which files, their text, their documents."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from controller import yamlsource
from controller.errors import Problem
from controller.load.common import BUILTIN_FILE
from controller.load.problems import _raise_if
from controller.load.schema import validate_document
from controller.model import (
    Document,
    Source,
)

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
