"""The watched folder: the manifests it holds, and what the controller applies from each file.

Files are read only when they are complete (the watcher tells which are still open for
writing) and only when they changed (size, mtime and inode): a file that failed validation
is not parsed again until it is edited. What is applied from a file is its documents when
they are valid, and otherwise the *last good* documents from it (those of the last reconcile
that accepted it), so that a broken or half-written file never changes what works.

Manifests are *.yaml and *.yml anywhere under the folder, except hidden files and folders
(`.git`, editors' `.name.swp`) and editors' leftovers (`#name#`, `name~`), as `load` reads
folders.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from controller import load
from controller.errors import FolderMissing, ManifestError, Problem
from controller.model import Document

Signature = tuple[int, int, int]  # mtime_ns, size, inode
LEFTOVER_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak")


__all__ = ["FolderMissing"]  # errors.FolderMissing: the folder is not there, nothing is pruned


def is_manifest(root: str, path: str) -> bool:
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    if rel.startswith("..") or any(p.startswith(".") for p in parts):
        return False
    name = parts[-1]
    if name.startswith("#") or name.endswith(LEFTOVER_SUFFIXES):
        return False
    return name.endswith((".yaml", ".yml"))


@dataclass(frozen=True)
class Parsed:
    signature: Signature
    documents: tuple[Document, ...] | None  # None: invalid
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The folder now: every manifest file, parsed (or None while it is being written)."""

    files: Mapping[str, Parsed | None]

    @property
    def fingerprint(self) -> tuple[tuple[str, Signature | None], ...]:
        return tuple(sorted((p, f.signature if f else None) for p, f in self.files.items()))


class Folder:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._cache: dict[str, Parsed] = {}
        self.reads = 0  # files actually read and parsed (tests: unchanged files are not)

    def paths(self) -> list[str]:
        found: list[str] = []
        for top, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(top, n) for n in names)
        return sorted(p for p in found if is_manifest(self.root, p))

    def scan(self, incomplete: Collection[str] = ()) -> Snapshot:
        if not os.path.isdir(self.root):
            raise FolderMissing(f"the manifests folder {self.root} does not exist")
        files: dict[str, Parsed | None] = {}
        for path in self.paths():
            files[path] = None if path in incomplete else self._parsed(path)
        for gone in self._cache.keys() - files.keys():
            del self._cache[gone]
        return Snapshot(files)

    def _parsed(self, path: str) -> Parsed | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # removed since the walk: the next scan will not list it
        except OSError as exc:
            return Parsed((0, 0, 0), None, (Problem(path, 0, "", (exc.strerror or str(exc)).lower()),))
        try:
            before = _signature(os.fstat(fd))
            cached = self._cache.get(path)
            if cached is not None and cached.signature == before:
                return cached
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            if _signature(os.fstat(fd)) != before:
                return None  # written while we read it: wait for the next event
        finally:
            os.close(fd)
        self.reads += 1
        parsed = _parse(data, path, before)
        self._cache[path] = parsed
        return parsed


def _signature(st: os.stat_result) -> Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _parse(data: bytes, path: str, signature: Signature) -> Parsed:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Parsed(signature, None, (Problem(path, line, "", f"not UTF-8 text ({exc.reason})"),))
    try:
        return Parsed(signature, tuple(load.parse_text(text, path)))
    except ManifestError as exc:
        return Parsed(signature, None, exc.problems)


# --------------------------------------------------------------------------- what to apply


@dataclass
class Selection:
    """The documents to apply, file by file, and why some files are not applied as they are."""

    chosen: dict[str, tuple[Document, ...]]
    failed: dict[str, list[str]] = field(default_factory=dict)  # file -> problems, as text
    held: set[str] = field(default_factory=set)  # failed files whose last good documents are applied
    pending: set[str] = field(default_factory=set)  # being written: last good kept

    def documents(self) -> list[Document]:
        return [d for path in sorted(self.chosen) for d in self.chosen[path]]

    def changed(self, last_good: Mapping[str, tuple[Document, ...]]) -> set[str]:
        """Files whose applied documents would differ from the last good ones."""
        paths = self.chosen.keys() | last_good.keys()
        return {p for p in paths if p not in self.chosen or self.chosen[p] != last_good.get(p, ())}

    def revert(
        self, files: Iterable[str], last_good: Mapping[str, tuple[Document, ...]], reasons: Iterable[str]
    ) -> None:
        """Apply these files' last good documents instead (a deleted file's too: its objects
        are kept while pruning them would break the rest)."""
        texts = list(dict.fromkeys(reasons))
        for path in files:
            self.chosen[path] = last_good.get(path, ())
            self.held.add(path)
            self.failed.setdefault(path, [])
            self.failed[path].extend(t for t in texts if t not in self.failed[path])


def select(snapshot: Snapshot, last_good: Mapping[str, tuple[Document, ...]]) -> Selection:
    out = Selection({})
    for path, parsed in snapshot.files.items():
        if parsed is None:
            out.chosen[path] = last_good.get(path, ())
            out.pending.add(path)
        elif parsed.documents is None:
            out.chosen[path] = last_good.get(path, ())
            out.failed[path] = [str(p) for p in parsed.problems]
            out.held.add(path)
        else:
            out.chosen[path] = parsed.documents
    return out


def implicated(problems: Iterable[Problem], files: Collection[str]) -> dict[str, list[str]]:
    """Folder files a problem is about: its own file, and any other one its message names
    (a conflict names the other place: "already defined at other.yaml:3")."""
    out: dict[str, list[str]] = {}
    for problem in problems:
        text = str(problem)
        named = {problem.file} | {f for f in files if f in problem.message}
        for path in named & set(files):
            out.setdefault(path, []).append(text)
    return out


def by_file(documents: Iterable[Document]) -> dict[str, tuple[Document, ...]]:
    out: dict[str, list[Document]] = {}
    for doc in documents:
        out.setdefault(doc.source.file, []).append(doc)
    return {path: tuple(docs) for path, docs in out.items()}
