"""The cluster options, as Docker's daemon took them (pure).

    --cluster-store etcd://HOST:PORT[,HOST:PORT...]   (or unix:///PATH, for tests)
    --cluster-store-opt KEY=VALUE                     kv.cacertfile, kv.certfile, kv.keyfile
                                                      (TLS, Docker's names), discovery.ttl
                                                      (seconds a dead host stays listed),
                                                      kv.timeout (seconds per request)
    --advertise-address IP|IFACE                      this host's underlay address: its VXLAN
                                                      tunnel endpoint and its name in the cluster
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from controller.errors import UserError

if TYPE_CHECKING:
    import ssl

DEFAULT_TTL = 15
TLS_OPTIONS = ("kv.cacertfile", "kv.certfile", "kv.keyfile")
KNOWN_OPTIONS = (*TLS_OPTIONS, "discovery.ttl", "kv.timeout")


@dataclass(frozen=True)
class ClusterConfig:
    endpoints: tuple[str, ...]  # http(s)://HOST:PORT or unix:///PATH, as the etcd client takes them
    advertise: str  # an IPv4 address or an interface name (resolved by the session)
    ttl: int = DEFAULT_TTL
    timeout: float = 2.0
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not (self.cacert or self.cert):
            return None
        import ssl  # only with TLS options: every command parses these options

        context = ssl.create_default_context(cafile=self.cacert)
        if self.cert:
            context.load_cert_chain(self.cert, self.key)
        return context


def parse(store: str, advertise: str | None, options: Sequence[str] = ()) -> ClusterConfig:
    opts = _options(options)
    tls = any(k in opts for k in TLS_OPTIONS)
    endpoints = _endpoints(store, tls)
    if not advertise:
        raise UserError(
            "--advertise-address is required with --cluster-store: the address other hosts "
            "reach this one at (its VXLAN tunnel endpoint)"
        )
    advertise = advertise.strip()
    if ":" in advertise and _is_ipv4(advertise.rsplit(":", 1)[0]):
        advertise = advertise.rsplit(":", 1)[0]  # Docker's HOST_IP:PORT: the port is not ours
    try:
        ttl = int(opts.get("discovery.ttl", DEFAULT_TTL))
        timeout = float(opts.get("kv.timeout", 2.0))
    except ValueError as exc:
        raise UserError(f"--cluster-store-opt: {exc}") from exc
    if ttl < 2:
        raise UserError("--cluster-store-opt discovery.ttl: at least 2 seconds")
    return ClusterConfig(
        endpoints=endpoints,
        advertise=advertise,
        ttl=ttl,
        timeout=timeout,
        cacert=opts.get("kv.cacertfile"),
        cert=opts.get("kv.certfile"),
        key=opts.get("kv.keyfile"),
    )


def _options(options: Sequence[str]) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--cluster-store-opt {item!r}: expected KEY=VALUE")
        if key not in KNOWN_OPTIONS:
            raise UserError(f"--cluster-store-opt {key}: unknown; known: {', '.join(KNOWN_OPTIONS)}")
        out[key] = value
    return out


def _endpoints(store: str, tls: bool) -> tuple[str, ...]:
    url = urlsplit(store.strip())
    if url.scheme == "unix":
        return (f"unix://{url.path}",)
    if url.scheme != "etcd":
        raise UserError(
            f"--cluster-store {store!r}: only etcd is supported: etcd://HOST:PORT[,HOST:PORT...]"
        )
    scheme = "https" if tls else "http"
    hosts = [h.strip() for h in url.netloc.split(",") if h.strip()]
    if not hosts:
        raise UserError(f"--cluster-store {store!r}: no HOST:PORT")
    return tuple(f"{scheme}://{h if ':' in h else h + ':2379'}" for h in hosts)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True
