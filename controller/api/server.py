"""HTTP on a unix socket: the controller's API (api/docker.py says what it answers).

The socket is the access control: mode 0660, owner root, group --api-group; whoever can
connect can change the network, as with Docker's own socket. A thread per connection
(ThreadingMixIn), each request with its own pipeline session: requests wait for the state
lock like any `netctl` command. A request that cannot be read gets a 400; one the handler
fails on gets a 500 with the error's message; nothing a client sends stops the server.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import socketserver
import stat
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import structlog

from controller.errors import UserError

log = structlog.get_logger("netctl.api")

MAX_BODY = 1 << 20  # network requests are small; refuse more than a MiB
READ_TIMEOUT = 10.0  # seconds a client may take to send its request


@dataclass
class Request:
    method: str
    path: str  # without the version prefix and the query
    query: Mapping[str, list[str]]
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON (an empty body is an empty object, as Docker takes it)."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"invalid JSON: {exc}") from None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(UserError):
    """The request itself is wrong (400)."""


Handler = Callable[[Request], Response]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog is 5: the 6th client connecting at once gets EAGAIN
    request_queue_size = socket.SOMAXCONN


def serve(path: str, handle: Handler, group: str | None = None) -> _Server:
    """Serve `handle` on the unix socket `path` in a daemon thread; `shutdown()` stops it
    (the socket file is removed by `close`)."""
    _remove_stale(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the docker SDK reuses its connection
        timeout = READ_TIMEOUT

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ConnectionError, TimeoutError):
                self.close_connection = True

        def _dispatch(self) -> None:
            try:
                request = self._request()
                response = handle(request)
            except BadRequest as exc:
                response = Response(400, {"message": str(exc)})
            except Exception as exc:  # the handler's bug: say so, keep serving
                log.exception("api request failed", method=self.command, path=self.path)
                response = Response(500, {"message": f"internal error: {exc}"})
            self._send(response)

        do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _dispatch

        def _request(self) -> Request:
            length = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self._chunked()
            else:
                try:
                    size = int(length) if length else 0
                except ValueError:
                    raise BadRequest(f"bad Content-Length {length!r}") from None
                if size < 0 or size > MAX_BODY:
                    self.close_connection = True
                    raise BadRequest(f"request body of {size} bytes refused (at most {MAX_BODY})")
                body = self.rfile.read(size)
            url = urllib.parse.urlsplit(self.path)
            return Request(self.command, urllib.parse.unquote(url.path),
                           urllib.parse.parse_qs(url.query, keep_blank_values=True), body,
                           {k.lower(): v for k, v in self.headers.items()})

        def _chunked(self) -> bytes:
            body = b""
            while True:
                line = self.rfile.readline(64).strip()
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError:
                    self.close_connection = True
                    raise BadRequest("bad chunk size") from None
                if size == 0:
                    self.rfile.readline(64)
                    return body
                if len(body) + size > MAX_BODY:
                    self.close_connection = True
                    raise BadRequest(f"request body refused (at most {MAX_BODY} bytes)")
                body += self.rfile.read(size)
                self.rfile.readline(64)

        def _send(self, response: Response) -> None:
            if isinstance(response.body, bytes):
                payload = response.body
                kind = response.headers.pop("Content-Type", "text/plain; charset=utf-8")
            elif response.body is None:
                payload, kind = b"", ""
            else:
                payload = (json.dumps(response.body) + "\n").encode()
                kind = "application/json"
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if kind:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD" and response.status not in (204, 304):
                self.wfile.write(payload)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (a request line it cannot read): Docker's JSON."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(Response(code, {"message": message or "bad request"}))

        def address_string(self) -> str:  # a unix socket's peer has no address
            return "unix"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("api", request=format % args)

    server = _Server(path, RequestHandler)
    os.chmod(path, 0o660)
    os.chown(path, 0, grp.getgrnam(group).gr_gid if group else 0)
    threading.Thread(target=server.serve_forever, name="netctl-api", daemon=True).start()
    return server


def close(server: _Server) -> None:
    server.shutdown()
    server.server_close()
    with contextlib.suppress(OSError):
        os.unlink(server.server_address)  # type: ignore[arg-type]


def _remove_stale(path: str) -> None:
    """A socket left by a controller that is gone (one controller per state dir holds the
    lock, so a socket here is a leftover); anything else at that path is refused."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise UserError(f"--api-socket {path}: exists and is not a socket")
    os.unlink(path)


def group_exists(group: str) -> bool:
    try:
        grp.getgrnam(group)
    except KeyError:
        return False
    return True
