"""The Docker Engine API's network endpoints, over netctl's state (netops.py).

Existing Docker clients (the docker SDK, `DOCKER_HOST=unix://...`) list, inspect, create,
connect, disconnect, remove and prune netctl's networks with Docker's JSON shapes and status
codes; paths may carry a version prefix (`/v1.45/networks`). What is created here is recorded
as `netctl network create` records it. Errors are Docker's `{"message": ...}`:
400 bad parameters, 403 refused (a pre-defined network, one in use, already connected),
404 no such network or container, 409 a name taken, 500 the kernel failed.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from controller import listing, netops, render
from controller.api.server import BadRequest, Request, Response
from controller.errors import ConflictError, NetctlError, NotFoundError, StateError, UserError
from controller.model import Observed
from controller.pipeline import Session

API_VERSION = "1.45"  # what the docker SDK 7 asks for; older clients' prefixes are accepted
MIN_API_VERSION = "1.24"
_VERSIONED = re.compile(r"^/v\d+\.\d+(?=/)")
_NETWORK = re.compile(r"^/networks/(?P<ref>[^/]+)(?P<verb>/connect|/disconnect)?$")


class DockerApi:
    """Routes a request to its endpoint; `session` opens a pipeline session per request."""

    def __init__(self, session: Callable[[], Session], version: str) -> None:
        self.session = session
        self.version = version

    def __call__(self, request: Request) -> Response:
        path = _VERSIONED.sub("", request.path)
        try:
            return self._route(request, path)
        except BadRequest:
            raise
        except NetctlError as exc:
            return Response(_status(exc), {"message": str(exc)})

    def _route(self, request: Request, path: str) -> Response:
        method = request.method
        if path == "/_ping" and method in ("GET", "HEAD"):
            return Response(200, b"OK", {**self._headers(), "Cache-Control": "no-cache, no-store",
                                         "Pragma": "no-cache"})
        if path == "/version" and method == "GET":
            return Response(200, self._version_info(), self._headers())
        if path == "/networks" and method == "GET":
            return self._list(request)
        if path == "/networks/create" and method == "POST":
            return self._create(request)
        if path == "/networks/prune" and method == "POST":
            return self._prune(request)
        match = _NETWORK.match(path)
        if match and match["verb"] is None and method == "GET":
            return self._inspect(match["ref"])
        if match and match["verb"] is None and method == "DELETE":
            return self._remove(match["ref"])
        if match and match["verb"] == "/connect" and method == "POST":
            return self._connect(match["ref"], request.json())
        if match and match["verb"] == "/disconnect" and method == "POST":
            return self._disconnect(match["ref"], request.json())
        return Response(404, {"message": "page not found"})

    # ------------------------------------------------------------------ the endpoints

    def _headers(self) -> dict[str, str]:
        return {"Api-Version": API_VERSION, "Ostype": "linux", "Docker-Experimental": "false",
                "Server": f"netctl/{self.version}"}

    def _version_info(self) -> dict[str, Any]:
        return {"Platform": {"Name": "netctl"},
                "Components": [{"Name": "netctl", "Version": self.version, "Details": {}}],
                "Version": self.version, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux", "Arch": _arch(), "KernelVersion": platform.release()}

    def _list(self, request: Request) -> Response:
        filters = _filters(request.param("filters"))
        for key in filters:
            if key not in listing.NETWORK_FILTERS:
                raise BadRequest(f"invalid filter '{key}'")
        with self._open() as s:
            target = netops.listed_target(s)
        keep = listing.network_filter(target, filters)
        empty = Observed(())
        # Docker lists networks without their containers (API >= 1.28: inspect each for those)
        out = [{**render.network_inspect(target, empty, n.name), "Containers": {}}
               for n in sorted(target.networks, key=lambda n: n.name) if keep(n)]
        return Response(200, out)

    def _inspect(self, ref: str) -> Response:
        with self._open() as s:
            outcome = s.current()
        net = netops.find_network(outcome.target, ref)
        return Response(200, render.network_inspect(outcome.target, outcome.observed, net.name))

    def _create(self, request: Request) -> Response:
        body = _object(request.json(), "request body")
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise BadRequest("network name must be a non-empty string (Name)")
        if body.get("Ingress") or body.get("ConfigOnly") or body.get("ConfigFrom"):
            raise BadRequest("Ingress, ConfigOnly and ConfigFrom are swarm features netctl does not have")
        ipam = _object(body.get("IPAM") or {}, "IPAM")
        driver = _string(body.get("Driver") or "bridge", "Driver")
        request_ = netops.NetworkRequest(
            name=name, driver=driver, internal=_bool(body.get("Internal"), "Internal"),
            ipv6=_bool(body.get("EnableIPv6"), "EnableIPv6"),
            options=_strings(body.get("Options"), "Options"), labels=_strings(body.get("Labels"), "Labels"),
            ipam=[_ipam_config(c, i) for i, c in enumerate(_list(ipam.get("Config"), "IPAM.Config"))],
            ipam_driver=_optional_string(ipam.get("Driver"), "IPAM.Driver"),
            ipam_options=_strings(ipam.get("Options"), "IPAM.Options"), source="<docker api>")
        with self._open() as s:
            net = netops.create(s, request_)
        return Response(201, {"Id": net.id if net else name, "Warning": ""})

    def _remove(self, ref: str) -> Response:
        with self._open() as s:
            net = netops.find_network(netops.listed_target(s), ref)
            netops.remove(s, [net.name])
        return Response(204)

    def _connect(self, ref: str, body: Any) -> Response:
        body = _object(body, "request body")
        endpoint = _object(body.get("EndpointConfig") or {}, "EndpointConfig")
        addresses = _object(endpoint.get("IPAMConfig") or {}, "EndpointConfig.IPAMConfig")
        aliases = [_string(a, "EndpointConfig.Aliases") for a in _list(endpoint.get("Aliases"), "Aliases")]
        ipv4 = _optional_string(addresses.get("IPv4Address"), "IPv4Address")
        ipv6 = _optional_string(addresses.get("IPv6Address"), "IPv6Address")
        wanted = _container_ref(body)
        with self._open() as s:
            net, container = self._pair(s, ref, wanted)
            netops.connect(s, net, container, ipv4, ipv6, aliases)
        return Response(200)

    def _disconnect(self, ref: str, body: Any) -> Response:
        body = _object(body, "request body")
        force = _bool(body.get("Force"), "Force")
        wanted = _container_ref(body)
        with self._open() as s:
            net, container = self._pair(s, ref, wanted, missing_ok=force)
            netops.disconnect(s, net, container, force)
        return Response(200)

    def _pair(self, s: Session, ref: str, container: str, missing_ok: bool = False) -> tuple[str, str]:
        target = netops.listed_target(s)
        net = netops.find_network(target, ref).name
        try:
            return net, netops.find_container(target, container).name
        except NotFoundError:
            if missing_ok:
                return net, container
            raise NotFoundError(f"No such container: {container}") from None

    def _prune(self, request: Request) -> Response:
        filters = _filters(request.param("filters"))
        items = [f"{key}={value}" for key, values in filters.items() for value in values]
        keep = listing.prune_filter(items, datetime.datetime.now(datetime.UTC))
        with self._open() as s:
            doomed = netops.unused(netops.listed_target(s), keep)
            netops.prune(s, doomed)
        return Response(200, {"NetworksDeleted": doomed})

    @contextmanager
    def _open(self) -> Iterator[Session]:
        s = self.session()
        try:
            yield s
        finally:
            s.close()


def _status(exc: NetctlError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, netops.NameTaken):
        return 409
    if isinstance(exc, ConflictError):
        return 403
    if isinstance(exc, UserError):
        return 400
    if isinstance(exc, StateError):
        return 503  # the state is locked by a long apply: try again
    return 500


# ------------------------------------------------------------------ parameters, as Docker reads them


def _filters(text: str | None) -> dict[str, list[str]]:
    """`filters` is JSON: {"name": ["a"]}, or the older {"name": {"a": true}}."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"invalid filters: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadRequest(f"invalid filter '{key}': expected a list of strings")
        out[key] = values
    return out


def _container_ref(body: Mapping[str, Any]) -> str:
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise BadRequest("Container must be a container's name or ID")
    return container


def _ipam_config(item: Any, index: int) -> dict[str, Any]:
    item = _object(item, f"IPAM.Config[{index}]")
    names = {"Subnet": "subnet", "Gateway": "gateway", "IPRange": "ipRange"}
    out: dict[str, Any] = {names[k]: _string(v, f"IPAM.Config[{index}].{k}") for k, v in item.items()
                           if k in names and v}
    aux = _strings(item.get("AuxiliaryAddresses"), f"IPAM.Config[{index}].AuxiliaryAddresses")
    if aux:
        out["auxAddresses"] = aux
    return out


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what}: expected a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{what}: expected a JSON array")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{what}: expected a string")
    return value


def _optional_string(value: Any, what: str) -> str | None:
    return None if value in (None, "") else _string(value, what)


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{what}: expected true or false")
    return value


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"{what}: expected an object of strings")
    return value


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)

