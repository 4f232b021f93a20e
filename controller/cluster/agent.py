"""`netctl overlay agent`: keeps this host's overlay data plane in step with the cluster.

Why a separate process and not only `netctl apply`: remote endpoints come and go without
anything happening on this host, so something must watch etcd. The agent is small and
stateless (everything is in etcd, the kernel and the state directory), so it can run next
to `netctl apply` or inside the controller (`Agent.run` in a thread) alike.

It does three things:

1. Liveness: keeps this host's lease alive (`/netctl/alive/HOST`, renewed every TTL/4);
   when the host dies, etcd expires the lease and the other agents drop its entries.
2. Propagation: one full read of `/netctl/`, then a watch from the next revision; on every
   change, the FDB and neighbour entries of each local VXLAN device are planned from the
   snapshot against what the kernel has (the same pure plan as `netctl apply`), under the
   state lock so that an apply never interleaves. Every few seconds it also re-plans, which
   repairs drift nobody announced.
3. Catch-up: after etcd comes back, this host's endpoints (`STATE/cluster/endpoints.json`,
   written by every apply) are published again, and the watch resumes from a fresh read.

While etcd is down nothing in the kernel is touched: existing tunnels keep forwarding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import structlog

from controller import names
from controller.cluster import keys
from controller.cluster.config import ClusterConfig
from controller.cluster.etcd import Etcd, EtcdError, Event, KeyValue, Watch, WatchCompacted
from controller.cluster.lease import Liveness
from controller.cluster.probe import Responder
from controller.cluster.session import cluster_dir, publish, read_json
from controller.cluster.state import EndpointRecord, Snapshot
from controller.cluster.underlay import resolve_advertise
from controller.drivers import overlay
from controller.errors import LockError
from controller.execute import execute
from controller.kernel.netns import Sockets
from controller.model import Kind, Resource
from controller.observe import overlay as observe_overlay
from controller.plan import plan
from controller.store import locked

log = structlog.get_logger("netctl.agent")

RESYNC_SECONDS = 5.0  # re-plan this often even without events (drift repair)
RETRY_SECONDS = 0.5  # first wait before reconnecting to etcd; doubles up to 4 s


class Agent:
    def __init__(self, config: ClusterConfig, state_dir: str, lock_timeout: float = 30.0) -> None:
        self.config = config
        self.state_dir = state_dir
        self.lock_timeout = lock_timeout
        with Sockets() as sockets:
            self.host = resolve_advertise(sockets, config.advertise)
        self.stop = threading.Event()
        self.connected = threading.Event()
        # Two clients: the keepalive thread must not queue behind a slow read.
        self.client = self._client()
        self.beat_client = self._client()
        self.liveness = Liveness(self.beat_client, self.host, self.host, config.ttl, state_dir)
        self.kvs: dict[str, KeyValue] = {}
        self.snapshot: Snapshot | None = None
        self.revision = 0
        self._watch: Watch | None = None
        self._program_lock = threading.Lock()
        self._last_program = 0.0
        self.programs = 0  # how many plans were applied (tests, logs)
        self.responder = Responder(self.host, self._client())

    def _client(self) -> Etcd:
        return Etcd(self.config.endpoints, timeout=self.config.timeout,
                    ssl_context=self.config.ssl_context())

    # ------------------------------------------------------------------ the loops

    def run(self) -> None:
        beat = threading.Thread(target=self._heartbeat, name="netctl-agent-lease", daemon=True)
        beat.start()
        self.responder.start()
        delay = RETRY_SECONDS
        try:
            while not self.stop.is_set():
                try:
                    self._resync()
                    delay = RETRY_SECONDS
                    self._follow()
                except WatchCompacted:
                    continue  # read everything again
                except EtcdError as exc:
                    if self.connected.is_set():
                        log.warning("cluster store unreachable; the data plane stays as it is",
                                    error=str(exc))
                    self.connected.clear()
                    self.stop.wait(delay)
                    delay = min(delay * 2, 4.0)
        finally:
            self.stop.set()
            self.responder.stop()
            beat.join(timeout=5)
            self.client.close()
            self.beat_client.close()

    def shutdown(self) -> None:
        self.stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()

    def _heartbeat(self) -> None:
        interval = max(self.config.ttl / 4, 0.5)  # three chances to renew before it expires
        first = True
        while not self.stop.is_set():
            try:
                if first:
                    self.liveness.ensure()
                    first = False
                else:
                    self.liveness.renew()
            except EtcdError as exc:
                log.debug("lease renewal failed", error=str(exc))
                watch = self._watch
                if watch is not None:
                    watch.close()  # a silent network: don't wait for the stream to notice
            if time.monotonic() - self._last_program >= RESYNC_SECONDS and self.connected.is_set():
                self._program("resync")
            self.stop.wait(min(interval, RESYNC_SECONDS))

    def _resync(self) -> None:
        r = self.client.get_prefix(keys.ROOT)
        self.kvs = {kv.key: kv for kv in r.kvs}
        self.revision = r.revision
        self.snapshot = Snapshot.parse(self.kvs.values(), self.revision)
        reconnected = not self.connected.is_set()
        self.connected.set()
        if reconnected:
            log.info("connected to the cluster store", revision=self.revision, host=self.host)
            self.liveness.ensure()
            self._publish_pending()
        self._program("sync")

    def _follow(self) -> None:
        watch = self.client.watch(keys.ROOT, self.revision + 1)
        self._watch = watch
        try:
            for batch in watch:
                if self.stop.is_set():
                    return
                if not batch.events:
                    continue
                self._apply(batch.events)
                self.revision = max(self.revision, batch.revision)
                self.snapshot = Snapshot.parse(self.kvs.values(), self.revision)
                if any(_relevant(e.kv.key) for e in batch.events):
                    self._program("watch")
        finally:
            self._watch = None
        if not self.stop.is_set():
            raise EtcdError("watch stream ended")

    def _apply(self, events: Iterable[Event]) -> None:
        for e in events:
            if e.type == "DELETE":
                self.kvs.pop(e.kv.key, None)
            else:
                self.kvs[e.kv.key] = e.kv

    # ------------------------------------------------------------------ the work

    def _program(self, why: str) -> None:
        """Plan the local VXLAN devices' entries from the snapshot and apply the difference."""
        snap = self.snapshot
        if snap is None:
            return
        with self._program_lock:
            self._last_program = time.monotonic()
            try:
                with locked(self.state_dir, self.lock_timeout):
                    try:
                        self._program_locked(snap, why)
                    finally:
                        self._sync_dns(snap)
            except LockError as exc:
                log.warning("state lock busy; entries will be programmed on the next pass",
                            error=str(exc))
            except Exception as exc:  # a kernel error: the next pass (<= RESYNC_SECONDS) retries
                log.error("programming overlay entries failed", why=why, error=str(exc))

    def _program_locked(self, snap: Snapshot, why: str) -> None:
        t0 = time.perf_counter()
        # Fresh sockets each pass: a socket kept open in an overlay namespace would keep
        # that namespace (and its VXLAN device) alive after an apply deleted it.
        with Sockets() as sockets:
            found = observe_overlay.observe(sockets)
            seen = [r for r in found if r.kind in (Kind.FDB, Kind.NEIGH)]
            wanted: list[Resource] = []
            for ov in (r for r in found if r.kind is Kind.VXLAN):
                network_id = str(ov.attrs["alias"])[len(names.OWNER_PREFIX):]
                record = snap.network_by_id(network_id)
                if record is None:
                    # Not in the cluster (removed, or being created right now by an apply
                    # that holds its own snapshot): its entries are left to netctl apply.
                    wanted.extend(r for r in seen if r.attrs["overlay"] == ov.attrs["netns"])
                    continue
                wanted.extend(overlay.peer_resources(network_id, snap.peers(record.name, self.host)))
            the_plan = plan(wanted, seen)
            if the_plan.empty:
                return
            execute(the_plan, sockets)
        self.programs += 1
        log.info("programmed overlay entries", why=why, summary=the_plan.summary(),
                 ms=round((time.perf_counter() - t0) * 1000, 1))

    def _sync_dns(self, snap: Snapshot) -> None:
        """Republish the embedded DNS records with the endpoints of the other live hosts, so
        that containers find remote containers of their overlay networks by name. The local
        part is this host's state as the last apply left it (the state lock is held); the
        records are rewritten, and the server told, only when they changed."""
        from controller.dns import control as embedded_dns
        from controller.documents import stored_target
        from controller.store import Store

        remote = snap.remote_names(self.host)
        try:
            store = Store(self.state_dir)
            try:
                target = stored_target(store)
                if target is None:
                    return  # nothing applied here: no container to answer
            finally:
                store.close()
            embedded_dns.sync(self.state_dir, target, remote)
        except Exception as exc:  # DNS trouble never stops the data plane; the next pass retries
            log.warning("publishing remote names to the embedded DNS failed", error=str(exc))

    def _publish_pending(self) -> None:
        """Publish what the last apply wanted published (it may have run while etcd was
        down). Read under the state lock: an apply running now writes the file first."""
        try:
            with locked(self.state_dir, self.lock_timeout):
                raw = read_json(f"{cluster_dir(self.state_dir)}/endpoints.json")
                if not isinstance(raw, dict) or raw.get("host") != self.host:
                    return
                desired = [
                    EndpointRecord(e["network"], self.host, e["container"], e["ip"], e["mac"], self.host)
                    for e in raw.get("endpoints", ())
                ]
                publish(self.client, self.host, raw.get("subnets", ()), desired,
                        self.config.ttl, self.state_dir)
        except LockError:
            pass  # an apply is running: it publishes itself


def _relevant(key: str) -> bool:
    return key.startswith((keys.ENDPOINTS, keys.ALIVE, keys.HOSTS, keys.NETWORKS))
