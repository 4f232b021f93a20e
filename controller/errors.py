"""netctl's errors: one tree, each class says who must act and maps to an exit code.

    NetctlError                       exit 1
    ├── UserError        (the user)   exit 2: fix your input, nothing was changed
    │   ├── ManifestError             validation problems, each with file, line and JSON path
    │   ├── NotFoundError             no such network/container
    │   ├── ConflictError             refused, e.g. a network that still has endpoints
    │   │   ├── ClusterConflict       the cluster holds something else (cluster.ipam)
    │   │   └── NameTaken, AlreadyConnected, NotConnected (netops)
    │   ├── Ambiguous                 an ID prefix of several networks (netops)
    │   ├── ResolveError              the input cannot be allocated (resolve)
    │   │   └── PoolExhausted         no subnet, address or VNI left (ipam)
    │   └── FolderMissing             the controller's folder is not there (daemon.folder)
    ├── StateError       (the user)   exit 3: the state directory is locked or unreadable
    │   └── LockError
    ├── ApplyError       (netctl/the kernel) exit 1: a kernel operation failed; the next
    │                                 apply or reconcile retries from what the kernel shows
    ├── ServiceError     (netctl)     exit 1: a helper did not answer: DnsUnavailable (dns),
    │                                 NftError (kernel.nft), NotOurReply (dns.upstream)
    └── ClusterError     (the cluster store) exit 1: EtcdError and its kinds (cluster.etcd)

Foreign errors (OSError, NetlinkError, jsonschema's) are mapped at the boundary that meets
them (`raise ... from exc`); the CLI prints `error: <message>` for every NetctlError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class NetctlError(Exception):
    exit_code = 1
    who = "netctl"

    @property
    def kind(self) -> str:
        return type(self).__name__


class UserError(NetctlError):
    exit_code = 2
    who = "user"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: `file:line path: message`."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(UserError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFoundError(UserError):
    pass


class ConflictError(UserError):
    pass


class StateError(NetctlError):
    exit_code = 3
    who = "user"


class LockError(StateError):
    pass


class ApplyError(NetctlError):
    exit_code = 1
    who = "netctl"

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # the resource whose action failed, when one did
        self.files: tuple[tuple[str, int], ...] = ()  # (file, line) of the documents blamed
        self.detail = message  # the message without the place


class ResolveError(UserError):
    pass


class PoolExhausted(ResolveError):
    pass


class FolderMissing(UserError):
    """The watched folder does not exist: nothing is pruned (most likely an unmounted volume)."""


class ServiceError(NetctlError):
    pass


class ClusterError(NetctlError):
    pass
