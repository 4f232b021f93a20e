"""Problems: where they are (file, line, JSON path) and how they read."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from controller import yamlsource
from controller.errors import ManifestError, Problem
from controller.model import (
    Document,
    Source,
)

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
