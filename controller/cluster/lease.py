"""This host's liveness in the cluster: `/netctl/alive/HOST`, attached to a lease.

While someone renews the lease (the overlay agent, every TTL/4), the key exists and the
other hosts program this host's endpoints; when the host dies or leaves, etcd expires the
lease within the TTL and the key vanishes with it, and so do the entries elsewhere.

The lease ID is kept in the state directory, so `netctl apply` and the agent share one
lease instead of fighting over the key with two.
"""

from __future__ import annotations

import contextlib
import os

from controller.cluster import keys
from controller.cluster.etcd import Etcd
from controller.cluster.state import dumps


class Liveness:
    def __init__(self, client: Etcd, host: str, vtep: str, ttl: int, state_dir: str) -> None:
        self.client = client
        self.host = host
        self.vtep = vtep
        self.ttl = ttl
        self.path = os.path.join(state_dir, "cluster", "lease")
        self.lease = self._load()

    def _load(self) -> int:
        try:
            with open(self.path, encoding="utf-8") as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(self.lease))
        os.replace(tmp, self.path)

    def ensure(self) -> int:
        """Make sure the lease exists and the alive key is on it; the lease ID."""
        self.lease = self._load() or self.lease
        if not self.lease or self.client.time_to_live(self.lease) <= 0:
            self.lease = self.client.grant(self.ttl)
            self._save()
        key = keys.alive(self.host)
        current = self.client.get(key)
        value = dumps({"vtep": self.vtep})
        if current is None or current.lease != self.lease or current.value != value:
            self.client.put(key, value, lease=self.lease)
        return self.lease

    def renew(self) -> None:
        """One keepalive; a lease etcd has dropped (expired during an outage) is replaced."""
        if not self.lease or self.client.keepalive(self.lease) <= 0:
            self.ensure()

    def leave(self) -> None:
        """Leave the cluster now (revoke: the alive key goes at once, not after the TTL)."""
        if self.lease:
            self.client.revoke(self.lease)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.lease = 0
