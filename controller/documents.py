"""Documents -> spec -> target without touching the kernel: what every command shares.

`build` is load's typed spec with the default networks (and the host configuration folded
into `bridge`); `stored_target` is the read-only target of what was applied, for the
commands that only look (exec, the overlay agent's DNS records, listings).
"""

from __future__ import annotations

from collections.abc import Sequence

from controller import drivers, hostconfig, load
from controller.errors import ManifestError
from controller.model import Document, Spec, Target
from controller.resolve import HostFacts, resolve
from controller.store import Store


def require_cluster_store(documents: Sequence[Document], have_store: bool) -> None:
    """Overlay networks live in the cluster store: without one, say so at validate time, with
    the document's place, instead of failing half-way through an apply."""
    if have_store:
        return
    # Imperative commands hand over documents no parser has seen: the typed view needs valid
    # ones. Only networks are read here (a folder's containers were validated by the loader).
    networks = [d for d in documents if d.kind == "Network"]
    if problems := [p for d in networks for p in load.validate_document(d)]:
        raise ManifestError(problems)
    problems = [
        load.problem_at(d, "spec.driver", f"driver {driver} needs a cluster store: run netctl with "
                        "--cluster-store etcd://HOST:PORT (see netctl --help)")
        for d in networks
        if drivers.is_global(driver := load.network_spec(d).driver)
    ]
    if problems:
        raise ManifestError(problems)


def build(documents: Sequence[Document]) -> Spec:
    """The spec of these documents; the built-in networks exist while anything else does."""
    builtin = hostconfig.builtin(load.load_builtin(), hostconfig.current()) if documents else []
    return load.build_spec(documents, builtin)


def merge(stored: Sequence[Document], new: Sequence[Document]) -> list[Document]:
    """Later documents replace stored ones of the same kind and name (kubectl apply)."""
    replaced = {(d.kind, d.name) for d in new}
    return [d for d in stored if (d.kind, d.name) not in replaced] + list(new)


def stored_target(store: Store) -> Target | None:
    """The target of the documents in the store (None: nothing was applied), with the
    allocations already made: no new ID, subnet or address is picked."""
    documents = store.documents()
    if not documents:
        return None
    spec = build(documents)
    target, _ = resolve(spec, store.allocations(), HostFacts(), "")
    return target
