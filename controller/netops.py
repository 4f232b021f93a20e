"""Docker's network operations on the state: create, remove, prune, connect, disconnect.

Shared by `netctl network ...` and the controller's Docker Engine API (api/docker.py), so
that both record a change the same way: as if applied from a manifest, origin "cli".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from controller import load
from controller.errors import ConflictError, NotFoundError, UserError
from controller.model import Attachment, ContainerTarget, Document, NetworkTarget, Source, Target
from controller.pipeline import Session

API_VERSION = "netctl/v1"
FOLDER_ORIGIN = "controller:"  # a watched folder's objects (daemon/controller.py: the origin)


@dataclass(frozen=True)
class NetworkRequest:
    """`docker network create`'s parameters, in netctl's spec terms."""

    name: str
    driver: str = "bridge"
    internal: bool = False
    ipv6: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ipam: Sequence[Mapping[str, Any]] = ()  # netctl's ipam.config items (subnet, gateway, ipRange...)
    ipam_driver: str | None = None  # None: netctl's own ("default")
    ipam_options: Mapping[str, str] = field(default_factory=dict)
    source: str = "<network create>"

    def document(self) -> Document:
        spec: dict[str, Any] = {"driver": self.driver, "internal": self.internal, "enableIPv6": self.ipv6,
                                "options": dict(self.options)}
        ipam: dict[str, Any] = {"config": [dict(c) for c in self.ipam]} if self.ipam else {}
        if self.ipam_driver:
            ipam["driver"] = self.ipam_driver  # validation refuses any but "default", saying so
        if self.ipam_options:
            ipam["options"] = dict(self.ipam_options)
        if ipam:
            spec["ipam"] = ipam
        body = {"apiVersion": API_VERSION, "kind": "Network",
                "metadata": {"name": self.name, "labels": dict(self.labels)}, "spec": spec}
        # a document as a manifest would give it (no YAML round trip): apply validates it
        return Document("Network", self.name, body, Source(self.source, 0))


def listed_target(s: Session) -> Target:
    """The networks as `ls` shows them: stored (and, with a cluster store, every host's
    overlays), resolved without observing the kernel."""
    from controller.documents import build
    from controller.resolve import HostFacts, resolve

    docs, allocations = s.store.documents(), s.store.allocations()
    if s.store_hook is not None:  # overlay networks are listed on every host of the cluster
        docs, allocations = s.store_hook.listing(docs, s.store.origins(), allocations)
    # The built-in networks are listed even before anything was applied, as Docker does.
    spec = build(docs) if docs else load.build_spec([], load.load_builtin())
    target, _ = resolve(spec, allocations, HostFacts(), "")
    return target


def create(s: Session, request: NetworkRequest) -> NetworkTarget | None:
    if any(d.kind == "Network" and d.name == request.name for d in s.store.documents()):
        raise NameTaken(f"network with name {request.name} already exists")
    outcome = s.apply([request.document()], origin="cli")
    return outcome.target.network(request.name)


class NameTaken(ConflictError):
    """A network of that name exists (Docker answers 409; its other refusals are 403)."""


def remove(s: Session, names: Sequence[str]) -> None:
    """All or nothing (Docker removes what it can): a refused name changes nothing."""
    s.delete([("Network", n) for n in names])


def unused(target: Target, keep: Callable[[NetworkTarget], bool]) -> list[str]:
    """What `network prune` removes: custom networks no container uses, that `keep` accepts."""
    used = {e.network for c in target.containers for e in c.endpoints}
    return [n.name for n in target.networks if not n.builtin and n.name not in used and keep(n)]


def prune(s: Session, doomed: Sequence[str]) -> None:
    if doomed:
        s.delete([("Network", n) for n in doomed], missing_ok=True)


def connect(s: Session, network: str, container: str, ipv4: str | None = None, ipv6: str | None = None,
            aliases: Sequence[str] = ()) -> None:
    def change(doc: Document, body: dict[str, Any]) -> None:
        nets = load.container_spec(doc).networks
        if any(a.network == network for a in nets):
            raise AlreadyConnected(f"container {container} is already attached to network {network}")
        added = Attachment(network, ipv4_address=ipv4, ipv6_address=ipv6, aliases=tuple(aliases))
        _set_attachments(body, (*nets, added))

    _edit_container(s, container, change)


def disconnect(s: Session, network: str, container: str, force: bool = False) -> None:
    def change(doc: Document, body: dict[str, Any]) -> None:
        nets = load.container_spec(doc).networks
        kept = tuple(a for a in nets if a.network != network)
        if len(kept) == len(nets):
            if force:
                return
            raise NotConnected(f"container {container} is not connected to network {network}")
        _set_attachments(body, kept or (Attachment("none"),))

    _edit_container(s, container, change, missing_ok=force)


class AlreadyConnected(ConflictError):
    pass


class NotConnected(ConflictError):
    pass


def _edit_container(
    s: Session, name: str, change: Callable[[Document, dict[str, Any]], None], missing_ok: bool = False
) -> None:
    origin = s.store.origins().get(("Container", name), "")
    if origin.startswith(FOLDER_ORIGIN):
        # the watched folder is authoritative: its next reconcile would undo the change
        raise ConflictError(f"container {name} is declared in the controller's folder "
                            f"({origin[len(FOLDER_ORIGIN):]}): change it there")

    def edit(docs: list[Document]) -> list[Document]:
        out = []
        found = False
        for d in docs:
            if d.kind == "Container" and d.name == name:
                body = json.loads(json.dumps(d.body))
                change(d, body)
                found = True
                d = Document(d.kind, d.name, body, d.source)
            out.append(d)
        if not found and not missing_ok:
            raise NotFoundError(f"no container named {name!r}")
        return out

    s.edit(edit)


def _set_attachments(body: dict[str, Any], attachments: tuple[Attachment, ...]) -> None:
    body.setdefault("spec", {})["networks"] = load.attachment_items(attachments)


# ------------------------------------------------------------------ names, IDs and ID prefixes


def find_network(target: Target, ref: str) -> NetworkTarget:
    """Docker's lookup: a full ID, else a name, else a unique ID prefix."""
    return _find(target.networks, ref, "network")


def find_container(target: Target, ref: str) -> ContainerTarget:
    return _find(target.containers, ref, "container")


class _Named(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


Item = TypeVar("Item", bound=_Named)


def _find(items: Sequence[Item], ref: str, what: str) -> Item:
    exact = [i for i in items if i.id == ref] or [i for i in items if i.name == ref]
    if exact:
        return exact[0]
    prefixed = [i for i in items if ref and i.id.startswith(ref)]
    if len(prefixed) > 1:
        raise Ambiguous(f"{what} {ref} is ambiguous ({len(prefixed)} matches found based on ID prefix)")
    if not prefixed:
        raise NotFoundError(f"{what} {ref} not found")
    return prefixed[0]


class Ambiguous(UserError):
    """Docker: 400 Bad Request."""
