"""Persistent state under --state-dir: what was applied and what was allocated (SQLite).

Written in one transaction before the kernel is touched, so that a crash between the two
never hands an address out twice: the next run finds the allocation and keeps it.

Tables: documents (applied manifests, with their source and origin), ids, subnets,
addresses, and owned_netns (namespaces netctl created; removed only after the kernel
deleted them, so that a crash mid-delete still knows what is ours).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from controller.errors import LockError, StateError
from controller.model import Allocations, Document, Source, StatusRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    file TEXT NOT NULL, line INTEGER NOT NULL, origin TEXT NOT NULL,
    updated TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS ids (
    kind TEXT NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL UNIQUE, created TEXT NOT NULL,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS subnets (network TEXT PRIMARY KEY, subnet TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (
    network TEXT NOT NULL, container TEXT NOT NULL, family INTEGER NOT NULL,
    address TEXT NOT NULL, PRIMARY KEY (network, container, family),
    UNIQUE (network, address));
CREATE TABLE IF NOT EXISTS owned_netns (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS status (
    kind TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    at TEXT NOT NULL, seconds REAL NOT NULL, source TEXT NOT NULL DEFAULT '',
    repaired TEXT NOT NULL DEFAULT '', PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def private_dir(state_dir: str) -> None:
    """The state directory is root's alone: it holds every manifest (0700, as Docker's
    /var/lib/docker). A sticky shared folder (/tmp) given as the state dir is left as it is;
    the files netctl makes in it are 0600 anyway."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    mode = os.stat(state_dir).st_mode
    if not mode & stat.S_ISVTX and stat.S_IMODE(mode) != 0o700:
        os.chmod(state_dir, 0o700)


def private_file(path: str) -> None:
    """Create `path` 0600 if it is missing (SQLite gives its -wal and -shm the same mode).

    An existing database is never opened here: closing any descriptor of a file drops every
    POSIX lock this process holds on it, those of SQLite's other connections included (the
    controller's API serves requests on threads, each with its own connection), and SQLite
    then lets two writers in: "database disk image is malformed"."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            os.chmod(path, 0o600)


@contextmanager
def locked(state_dir: str, timeout: float) -> Iterator[None]:
    """One writer per state directory; a second waits up to `timeout` seconds, then exit 3."""
    private_dir(state_dir)
    path = os.path.join(state_dir, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise LockError(
                        f"another netctl (pid {holder}) holds the lock on {state_dir}; "
                        f"waited {timeout:g}s (--lock-timeout)"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _replace_documents(db: sqlite3.Connection, rows: Iterable[tuple[object, ...]]) -> None:
    db.execute("DELETE FROM documents")
    db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


class Store:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        try:
            private_dir(state_dir)
            private_file(os.path.join(state_dir, "state.db"))
            self.db = sqlite3.connect(os.path.join(state_dir, "state.db"), isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._add_status_columns()
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state in {state_dir}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ------------------------------------------------------------------ documents

    def documents(self) -> list[Document]:
        rows = self.db.execute(
            "SELECT kind, name, body, file, line FROM documents ORDER BY kind, name"
        )
        return [Document(k, n, json.loads(b), Source(f, ln)) for k, n, b, f, ln in rows]

    def origins(self) -> dict[tuple[str, str], str]:
        rows = self.db.execute("SELECT kind, name, origin FROM documents")
        return {(k, n): o for k, n, o in rows}

    def save(
        self,
        documents: Iterable[Document],
        origins: dict[tuple[str, str], str],
        allocations: Allocations,
        netns: Iterable[str],
        now: str,
    ) -> None:
        """Replace the desired state and allocations, add namespaces about to be created."""
        with self.transaction() as db:
            _replace_documents(db, [
                (d.kind, d.name, json.dumps(d.body, sort_keys=True), d.source.file,
                 d.source.line, origins.get((d.kind, d.name), "apply"), now)
                for d in documents
            ])
            db.execute("DELETE FROM ids")
            db.executemany(
                "INSERT INTO ids VALUES (?, ?, ?, ?)",
                [(k, n, i, allocations.created[(k, n)]) for (k, n), i in allocations.ids.items()],
            )
            db.execute("DELETE FROM subnets")
            db.executemany("INSERT INTO subnets VALUES (?, ?)", allocations.subnets.items())
            db.execute("DELETE FROM addresses")
            db.executemany(
                "INSERT INTO addresses VALUES (?, ?, ?, ?)",
                [(n, c, f, a) for (n, c, f), a in allocations.addresses.items()],
            )
            db.executemany("INSERT OR IGNORE INTO owned_netns VALUES (?)", [(n,) for n in netns])

    def documents_snapshot(self) -> list[tuple[object, ...]]:
        """The documents table as it is, to put back with restore_documents."""
        return list(self.db.execute("SELECT * FROM documents"))

    def restore_documents(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Put back the documents of before a change that failed (allocations stay)."""
        with self.transaction() as db:
            _replace_documents(db, rows)

    # ------------------------------------------------------------------ allocations

    def allocations(self) -> Allocations:
        ids: dict[tuple[str, str], str] = {}
        created: dict[tuple[str, str], str] = {}
        for kind, name, oid, when in self.db.execute("SELECT kind, name, id, created FROM ids"):
            ids[(kind, name)] = oid
            created[(kind, name)] = when
        subnets = dict(self.db.execute("SELECT network, subnet FROM subnets").fetchall())
        addresses = {
            (n, c, f): a
            for n, c, f, a in self.db.execute(
                "SELECT network, container, family, address FROM addresses"
            )
        }
        return Allocations(ids, created, subnets, addresses)

    # ------------------------------------------------------------------ namespaces

    def owned_netns(self) -> set[str]:
        return {n for (n,) in self.db.execute("SELECT name FROM owned_netns")}

    def forget_netns(self, names: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM owned_netns WHERE name = ?", [(n,) for n in names])

    # ------------------------------------------------------------------ settings

    def setting(self, name: str) -> str | None:
        """A choice kept with the state (the firewall backend in use)."""
        row = self.db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_setting(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value))

    # ------------------------------------------------------------------ status

    def record_status(
        self, rows: Iterable[tuple[str, str, str, str]], now: str, seconds: float
    ) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM status")
            db.executemany(
                "INSERT INTO status (kind, name, state, reason, at, seconds) VALUES (?, ?, ?, ?, ?, ?)",
                [(k, n, s, r, now, seconds) for k, n, s, r in rows],
            )

    def status(self) -> list[tuple[str, str, str, str, str, float]]:
        return list(
            self.db.execute(
                "SELECT kind, name, state, reason, at, seconds FROM status ORDER BY kind, name"
            )
        )

    # The controller's per-object rows: where the object comes from and when drift was last
    # repaired, besides state, reason, last reconcile and its duration. Columns added to the
    # table above (older state directories get them on open).

    def _add_status_columns(self) -> None:
        have = {row[1] for row in self.db.execute("PRAGMA table_info(status)")}
        for column in ("source", "repaired"):
            if column not in have:
                try:
                    self.db.execute(f"ALTER TABLE status ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise

    def put_status(self, rows: Iterable[StatusRow]) -> None:
        """Insert or replace these rows, leave the others."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO status (kind, name, state, reason, at, seconds, source, repaired)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.kind, r.name, r.state, r.reason, r.at, r.seconds, r.source, r.repaired) for r in rows],
            )

    def drop_status(self, keys: Iterable[tuple[str, str]]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM status WHERE kind = ? AND name = ?", list(keys))

    def status_rows(self) -> list[StatusRow]:
        rows = self.db.execute(
            "SELECT kind, name, state, reason, at, seconds, source, repaired FROM status ORDER BY kind, name"
        )
        return [StatusRow(*row) for row in rows]
