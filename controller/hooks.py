"""What plugs into the pipeline: collaborators called at fixed points of a converge.

The embedded DNS server and the cluster store are hooks; a new one (a plugin process, an
event sink) subclasses `Hook` and overrides what it needs: every default leaves the change
as it is. The pipeline calls them in order, never by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from controller.model import Allocations, Document, Observed, Resource, Spec, Target

if TYPE_CHECKING:
    from controller.resolve import HostFacts

RemoteName = tuple[str, str, str]  # (network, container, address) of an endpoint on another host


class Hook:
    # ---------------------------------------------------------------- documents and allocation

    def has_store(self) -> bool:
        """Whether this hook is a cluster store (global networks need one)."""
        return False

    def stored_elsewhere(self) -> set[tuple[str, str]]:
        """Objects that exist beyond this host's store (a delete may name them)."""
        return set()

    def removing_networks(self, names: Sequence[str]) -> None:
        """Networks about to be deleted by the user (before the converge)."""

    def documents(self, documents: list[Document], origins: Mapping[tuple[str, str], str],
                  changed: Sequence[Document]) -> list[Document]:
        return documents

    def allocate(self, documents: Sequence[Document], changed: Sequence[Document], spec: Spec,
                 allocations: Allocations, facts: HostFacts, when: str, dry_run: bool,
                 ) -> tuple[Spec, Allocations]:
        return spec, allocations

    def origins(self) -> Mapping[tuple[str, str], str]:
        """Where objects this hook brought in come from (recorded with the documents)."""
        return {}

    # ---------------------------------------------------------------- the kernel

    def wanted(self, target: Target) -> list[Resource]:
        """Resources of the target that are this hook's (a service it keeps running)."""
        return []

    def observed(self) -> list[Resource]:
        return []

    def before_kernel(self, target: Target) -> None:
        """The desired state is stored, the kernel not touched yet (start what is slow)."""

    def with_peers(self, target: Target, wanted: Sequence[Resource], seen: Observed,
                   ) -> tuple[Sequence[Resource], Observed]:
        return wanted, seen

    def remote_names(self) -> list[RemoteName]:
        return []

    def converged(self, target: Target, remote: Sequence[RemoteName]) -> None:
        """The plan was executed (or was empty); `remote`: every hook's remote names."""

    def verified(self, target: Target) -> None:
        """The kernel was read back and has the target."""

    def close(self) -> None:
        pass
