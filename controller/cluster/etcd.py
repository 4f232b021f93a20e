"""A small etcd v3 client over etcd's JSON gateway: HTTP POST to /v3/kv/range, /v3/kv/txn, ...

Why not the `etcd3` package: it pins an old protobuf and grpc. The gateway ships with every
etcd since 3.3 and speaks JSON, so the standard library is enough. Its conventions: keys and
values are base64; 64-bit integers are strings; fields equal to their zero value are left
out (a txn whose compares failed has no "succeeded", a PUT event has no "type").

A client keeps one HTTP connection, shared by its callers under a lock; a watch opens a
connection of its own. Endpoints are tried in order and the one that answered is kept, so a
cluster of several etcd members survives the loss of one. Endpoints: `http://HOST:PORT`,
`https://HOST:PORT` (with an ssl context), `unix:///PATH` (tests: no TCP port at all).

    EtcdError
    ├── EtcdUnavailable    no endpoint answered (connection refused, timeout, reset)
    ├── EtcdRequestError   etcd answered with an error (bad request, no leader...)
    └── WatchCompacted     a watch asked for history etcd has compacted: read again
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from controller.errors import ClusterError


class EtcdError(ClusterError):
    pass


class EtcdUnavailable(EtcdError):
    pass


class EtcdRequestError(EtcdError):
    def __init__(self, status: int, message: str, code: int = 0) -> None:
        super().__init__(f"etcd: {message} (HTTP {status})")
        self.status = status
        self.code = code


class WatchCompacted(EtcdError):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch history compacted up to revision {compact_revision}")
        self.compact_revision = compact_revision


# --------------------------------------------------------------------------- values


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: str) -> bytes:
    """The range end that selects every key starting with `prefix` (etcd's convention)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"  # the empty prefix: every key


def _key_range(key: str, prefix: bool) -> dict[str, str]:
    if prefix and not key:  # every key: etcd spells it "\0" to "\0"
        return {"key": _b64(b"\0"), "range_end": _b64(b"\0")}
    if prefix:
        return {"key": _b64(key), "range_end": _b64(prefix_end(key))}
    return {"key": _b64(key)}


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0

    def json(self) -> Any:
        return json.loads(self.value)

    @classmethod
    def parse(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(kv.get("key")).decode(),
            value=_unb64(kv.get("value")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            version=int(kv.get("version", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True)
class Range:
    kvs: tuple[KeyValue, ...]
    revision: int  # the store's revision when it was read: watch from revision + 1


@dataclass(frozen=True)
class Compare:
    """One txn condition. target: VERSION | CREATE | MOD | VALUE | LEASE."""

    key: str
    target: str
    result: str  # EQUAL | NOT_EQUAL | GREATER | LESS
    value: int | bytes

    def body(self) -> dict[str, str]:
        name = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision",
                "VALUE": "value", "LEASE": "lease"}[self.target]
        value = _b64(self.value) if isinstance(self.value, bytes) else str(self.value)
        return {"key": _b64(self.key), "target": self.target, "result": self.result, name: value}


def absent(key: str) -> Compare:
    """True while `key` does not exist (a missing key's create revision is 0)."""
    return Compare(key, "CREATE", "EQUAL", 0)


def unchanged(key: str, mod_revision: int) -> Compare:
    """True while `key` was not written since it was read at `mod_revision` (0: absent)."""
    return Compare(key, "MOD", "EQUAL", mod_revision)


def value_is(key: str, value: bytes) -> Compare:
    return Compare(key, "VALUE", "EQUAL", value)


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    lease: int = 0

    def body(self) -> dict[str, Any]:
        put: dict[str, Any] = {"key": _b64(self.key), "value": _b64(self.value)}
        if self.lease:
            put["lease"] = str(self.lease)
        return {"request_put": put}


@dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False

    def body(self) -> dict[str, Any]:
        return {"request_delete_range": _key_range(self.key, self.prefix)}


@dataclass(frozen=True)
class Get:
    key: str
    prefix: bool = False

    def body(self) -> dict[str, Any]:
        return {"request_range": _key_range(self.key, self.prefix)}


Op = Put | Delete | Get


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    ranges: tuple[tuple[KeyValue, ...], ...] = ()  # one per Get op of the branch taken


@dataclass(frozen=True)
class Event:
    type: str  # PUT | DELETE
    kv: KeyValue


@dataclass(frozen=True)
class WatchBatch:
    revision: int
    events: tuple[Event, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- transport


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connect(endpoint: str, timeout: float, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    """An (unopened) HTTP connection to one endpoint."""
    url = urlsplit(endpoint)
    if url.scheme == "unix":
        return _UnixConnection(url.path, timeout)
    if url.hostname is None:
        raise ValueError(f"etcd endpoint {endpoint!r}: no host")
    port = url.port or 2379
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname, port, timeout=timeout, context=context)
    if url.scheme == "http":
        return http.client.HTTPConnection(url.hostname, port, timeout=timeout)
    raise ValueError(f"etcd endpoint {endpoint!r}: scheme must be http, https or unix")


_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, ValueError)


class Etcd:
    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 2.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd: no endpoints")
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._current = 0

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> Etcd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one request; the answer as JSON. Tries every endpoint once, starting with the
        last one that answered; a kept connection that went stale is reopened once first."""
        payload = json.dumps(body).encode()
        with self._lock:
            errors: list[str] = []
            n = len(self.endpoints)
            order = [(self._current + i) % n for i in range(n)]
            if self._conn is not None:
                order.insert(0, self._current)  # the kept connection first, then a fresh one
            for index in order:
                try:
                    if self._conn is None:
                        self._conn = connect(self.endpoints[index], self.timeout, self.ssl_context)
                    self._conn.request("POST", path, body=payload,
                                       headers={"Content-Type": "application/json"})
                    response = self._conn.getresponse()
                    data = response.read()
                except _TRANSPORT_ERRORS as exc:
                    self._drop()
                    errors.append(f"{self.endpoints[index]}: {exc or type(exc).__name__}")
                    continue
                self._current = index
                return _decode(response.status, data)
            raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(errors))

    # ------------------------------------------------------------------ kv

    def range(self, key: str, *, prefix: bool = False, keys_only: bool = False) -> Range:
        body: dict[str, Any] = Get(key, prefix).body()["request_range"]
        if keys_only:
            body["keys_only"] = True
        out = self.call("/v3/kv/range", body)
        return Range(
            tuple(KeyValue.parse(kv) for kv in out.get("kvs", ())),
            int(out["header"]["revision"]),
        )

    def get(self, key: str) -> KeyValue | None:
        kvs = self.range(key).kvs
        return kvs[0] if kvs else None

    def get_prefix(self, prefix: str) -> Range:
        return self.range(prefix, prefix=True)

    def put(self, key: str, value: bytes | str, lease: int = 0) -> int:
        raw = value.encode() if isinstance(value, str) else value
        out = self.call("/v3/kv/put", Put(key, raw, lease).body()["request_put"])
        return int(out["header"]["revision"])

    def delete(self, key: str, *, prefix: bool = False) -> int:
        out = self.call("/v3/kv/deleterange", Delete(key, prefix).body()["request_delete_range"])
        return int(out.get("deleted", 0))

    def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """All compares true: run `success`, else `failure`, atomically."""
        out = self.call(
            "/v3/kv/txn",
            {
                "compare": [c.body() for c in compare],
                "success": [op.body() for op in success],
                "failure": [op.body() for op in failure],
            },
        )
        ranges = tuple(
            tuple(KeyValue.parse(kv) for kv in r["response_range"].get("kvs", ()))
            for r in out.get("responses", ())
            if "response_range" in r
        )
        return TxnResult(bool(out.get("succeeded", False)), int(out["header"]["revision"]), ranges)

    # ------------------------------------------------------------------ leases

    def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its ID."""
        out = self.call("/v3/lease/grant", {"TTL": str(ttl)})
        if out.get("error"):
            raise EtcdRequestError(200, str(out["error"]))
        return int(out["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew a lease once; the TTL it was renewed to, 0 when etcd no longer has it."""
        out = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(out.get("result", {}).get("TTL", 0))

    def time_to_live(self, lease: int) -> int:
        """Seconds left on a lease, -1 when it does not exist (expired or revoked)."""
        out = self.call("/v3/lease/timetolive", {"ID": str(lease)})
        return int(out.get("TTL", -1))

    def revoke(self, lease: int) -> None:
        """Revoke a lease: every key attached to it is deleted now."""
        try:
            self.call("/v3/lease/revoke", {"ID": str(lease)})
        except EtcdRequestError as exc:
            if "not found" not in str(exc):
                raise

    # ------------------------------------------------------------------ watch

    def watch(self, prefix: str, start_revision: int) -> Watch:
        return Watch(self, prefix, start_revision)


def _decode(status: int, data: bytes) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(data) if data else {}
    except ValueError as exc:
        raise EtcdRequestError(status, f"not JSON: {data[:200]!r}") from exc
    if status != 200:
        message = str(out.get("message") or out.get("error") or data[:200])
        raise EtcdRequestError(status, message, int(out.get("code", 0)))
    return out


class Watch:
    """Events under a prefix from `start_revision` on, read from a streaming response.

    Iterate to get batches (one per etcd message; progress notifications come as empty
    batches); `close()` from another thread ends the iteration. The stream ends (the loop
    stops) when etcd goes away: the caller reads the state again and watches anew.
    """

    def __init__(self, client: Etcd, prefix: str, start_revision: int) -> None:
        self.prefix = prefix
        self._closed = False
        self._reading = False
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(prefix_end(prefix)),
                "start_revision": str(start_revision),
                "progress_notify": True,
            }
        }
        errors: list[str] = []
        for endpoint in client.endpoints:
            conn = connect(endpoint, client.timeout, client.ssl_context)
            try:
                conn.request("POST", "/v3/watch", body=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                if response.status != 200:
                    raise EtcdRequestError(response.status, response.read()[:200].decode(errors="replace"))
                first = self._message(response)
            except _TRANSPORT_ERRORS as exc:
                conn.close()
                errors.append(f"{endpoint}: {exc or type(exc).__name__}")
                continue
            except BaseException:
                conn.close()
                raise
            if first is None or not first.get("created"):
                conn.close()
                errors.append(f"{endpoint}: watch not created: {first}")
                continue
            if conn.sock is not None:
                conn.sock.settimeout(None)  # events may be minutes apart; close() unblocks
            self._conn = conn
            self._response = response
            return
        raise EtcdUnavailable("no etcd endpoint accepted the watch: " + "; ".join(errors))

    @staticmethod
    def _message(response: http.client.HTTPResponse) -> dict[str, Any] | None:
        while True:
            line = response.readline()
            if not line:
                return None
            if line.strip():
                out: dict[str, Any] = json.loads(line)
                if "error" in out:
                    raise EtcdRequestError(200, str(out["error"].get("message", out["error"])))
                result: dict[str, Any] = out.get("result", {})
                return result

    def __iter__(self) -> Iterator[WatchBatch]:
        self._reading = True
        try:
            while not self._closed:
                try:
                    msg = self._message(self._response)
                except _TRANSPORT_ERRORS:
                    return
                if msg is None:
                    return
                if msg.get("compact_revision") and msg.get("canceled"):
                    raise WatchCompacted(int(msg["compact_revision"]))
                if msg.get("canceled"):
                    return
                events = tuple(
                    Event(e.get("type", "PUT"), KeyValue.parse(e.get("kv", {})))
                    for e in msg.get("events", ())
                )
                yield WatchBatch(int(msg.get("header", {}).get("revision", 0)), events)
        finally:
            self._conn.close()

    def close(self) -> None:
        """Stop the watch, from any thread: the reader sees the end of the stream.

        Only the socket is shut down here; the reading thread closes the connection itself
        (http.client is not safe to close under a concurrent read)."""
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not self._reading:
            self._conn.close()
