"""The Docker API's parameter handling and status codes, without a kernel: requests that
never reach a session (bad JSON, unknown paths, bad filters) and the error mapping."""

from __future__ import annotations

import json

import pytest

from controller import netops
from controller.api import docker
from controller.api.server import BadRequest, Request
from controller.errors import ApplyError, ConflictError, LockError, ManifestError, NotFoundError
from controller.pipeline import Session


def request(method: str, path: str, body: object = None, query: str = "") -> Request:
    import urllib.parse

    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return Request(method, path, urllib.parse.parse_qs(query), raw, {})


def no_session() -> Session:
    raise AssertionError("this request must be refused before a session is opened")


API = docker.DockerApi(no_session, "0.1.0")


def test_ping_and_version_with_or_without_a_version_prefix() -> None:
    for path in ("/_ping", "/v1.45/_ping", "/v1.24/_ping"):
        r = API(request("GET", path))
        assert (r.status, r.body, r.headers["Api-Version"]) == (200, b"OK", docker.API_VERSION)
    info = API(request("GET", "/v1.45/version")).body
    assert info["ApiVersion"] == docker.API_VERSION and info["Os"] == "linux" and info["Version"] == "0.1.0"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/containers/json"), ("POST", "/networks"), ("PUT", "/networks/x"), ("GET", "/v1.45"),
    ("GET", "/networks/a/b/c"), ("GET", "/vX.Y/networks/x/connect"),
])
def test_what_is_not_a_network_endpoint_is_a_404(method: str, path: str) -> None:
    r = API(request(method, path))
    assert r.status == 404 and r.body == {"message": "page not found"}


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/networks/create", b"{nope", "invalid JSON"),
    ("/networks/create", [], "request body: expected a JSON object"),
    ("/networks/create", {"Name": ""}, "non-empty string"),
    ("/networks/create", {"Name": 5}, "non-empty string"),
    ("/networks/create", {"Name": "x", "Internal": "yes"}, "Internal: expected true or false"),
    ("/networks/create", {"Name": "x", "Labels": {"a": 1}}, "Labels: expected an object of strings"),
    ("/networks/create", {"Name": "x", "IPAM": {"Config": {}}}, "IPAM.Config: expected a JSON array"),
    ("/networks/create", {"Name": "x", "IPAM": {"Config": [{"Subnet": 7}]}}, "IPAM.Config[0].Subnet"),
    ("/networks/create", {"Name": "x", "Ingress": True}, "swarm"),
    ("/networks/n/connect", {"Container": ["web"]}, "Container must be"),
    ("/networks/n/connect", {"Container": "web", "EndpointConfig": {"Aliases": "api"}}, "JSON array"),
    ("/networks/n/disconnect", {"Container": "web", "Force": 1}, "Force: expected true or false"),
])
def test_bad_parameters_are_400s_before_anything_is_touched(path: str, body: object, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as info:
        API(request("POST", path, body))
    assert says in str(info.value)


@pytest.mark.parametrize("query", ["filters=%7Bnope", "filters=%5B%5D", "filters=%7B%22name%22%3A%201%7D",
                                   "filters=%7B%22colour%22%3A%5B%22red%22%5D%7D"])
def test_bad_filters_are_400s(query: str) -> None:
    with pytest.raises(BadRequest):
        API(request("GET", "/networks", query=query))


def test_filters_take_both_of_dockers_encodings() -> None:
    assert docker._filters('{"name": ["a", "b"]}') == {"name": ["a", "b"]}
    assert docker._filters('{"label": {"env=prod": true, "x": false}}') == {"label": ["env=prod"]}
    assert docker._filters(None) == {}


def test_netctl_errors_become_dockers_status_codes() -> None:
    assert docker._status(NotFoundError("no such network")) == 404
    assert docker._status(netops.NameTaken("taken")) == 409
    assert docker._status(ConflictError("bridge is a pre-defined network")) == 403
    assert docker._status(netops.AlreadyConnected("already")) == 403
    assert docker._status(ManifestError([])) == 400
    assert docker._status(netops.Ambiguous("ambiguous")) == 400
    assert docker._status(LockError("locked")) == 503
    assert docker._status(ApplyError("the kernel said no")) == 500


def test_an_id_prefix_must_be_unique() -> None:
    class N:
        def __init__(self, id: str, name: str) -> None:
            self.id, self.name = id, name

    items = [N("abc123", "one"), N("abd456", "two"), N("ffff", "abc")]
    assert netops._find(items, "abc", "network").name == "abc"  # a name before a prefix
    assert netops._find(items, "abc1", "network").name == "one"
    with pytest.raises(netops.Ambiguous):
        netops._find(items, "ab", "network")
    with pytest.raises(NotFoundError):
        netops._find(items, "zz", "network")
