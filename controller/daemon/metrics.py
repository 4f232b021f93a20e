"""The controller's Prometheus metrics, served as text on --metrics-address (off by default).

A few counters, gauges and one histogram are all we need, so this is a small registry of
our own rather than a dependency. Updated by the main thread, read by the HTTP thread.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _show(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in pairs)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(pairs, escaped, strict=True)) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    HELP: ClassVar[dict[str, tuple[str, str]]] = {
        "netctl_reconciles_total": ("counter", "Reconciles run, by result (ok, failed)."),
        "netctl_reconcile_duration_seconds": ("histogram", "How long one reconcile took."),
        "netctl_reconcile_actions_total": ("counter", "Kernel actions executed by reconciles."),
        "netctl_drift_repairs_total": ("counter", "Kernel objects repaired after drift, by kind."),
        "netctl_failures_total": ("counter", "Failed reconciles, by kind (temporary, permanent)."),
        "netctl_managed_objects": ("gauge", "Objects in the desired state, by kind."),
        "netctl_invalid_manifests": ("gauge", "Manifest files currently failing validation."),
        "netctl_last_reconcile_timestamp_seconds": ("gauge", "When the last reconcile ended."),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._histograms: dict[str, list[float]] = {}  # name -> [count per bucket..., sum, count]

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        with self._lock:
            key = (name, _labels(labels))
            self._counters[key] = self._counters.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._gauges[(name, _labels(labels))] = value

    def observe(self, name: str, value: float) -> None:
        with self._lock:
            h = self._histograms.setdefault(name, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    h[i] += 1
            h[-2] += value
            h[-1] += 1

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            key = (name, _labels(labels))
            return self._counters.get(key, self._gauges.get(key, 0.0))

    def render(self) -> str:
        with self._lock:
            lines: list[str] = []
            for name, (kind, text) in self.HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                if kind == "histogram":
                    h = self._histograms.get(name, [0.0] * (len(BUCKETS) + 2))
                    for i, bound in enumerate(BUCKETS):
                        lines.append(f"{name}_bucket{_show((), [('le', _number(bound))])} {_number(h[i])}")
                    lines.append(f'{name}_bucket{{le="+Inf"}} {_number(h[-1])}')
                    lines += [f"{name}_sum {_number(h[-2])}", f"{name}_count {_number(h[-1])}"]
                    continue
                values = self._counters if kind == "counter" else self._gauges
                for (metric, labels), value in sorted(values.items()):
                    if metric == name:
                        lines.append(f"{name}{_show(labels)} {_number(value)}")
            return "\n".join(lines) + "\n"


def serve(metrics: Metrics, address: str) -> ThreadingHTTPServer:
    """Serve /metrics on HOST:PORT in a daemon thread; `server.shutdown()` stops it."""
    host, port = parse_address(address)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            return

    server_class = ThreadingHTTPServer
    if ":" in host:

        class Server6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = Server6
    server = server_class((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="netctl-metrics", daemon=True).start()
    return server


def exposure_warning(address: str) -> str | None:
    """Said when metrics would be served on every address of the host, not just loopback."""
    host, _ = parse_address(address)
    if ipaddress.ip_address(host).is_unspecified:
        return (f"--metrics-address {address} serves metrics on every address of this host: anyone "
                "who can reach it reads network and container names; 127.0.0.1:PORT keeps them local")
    return None


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (every address) or `[V6]:PORT`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--metrics-address {address!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)
