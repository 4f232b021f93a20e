"""`netctl overlay agent|preflight|peers` and the global cluster options (parsing and output).

The global options go on the main parser (`add_global_options`), the subcommands under
`netctl overlay`; both read the same environment variables so that tests and services can
set them once: NETCTL_CLUSTER_STORE, NETCTL_CLUSTER_STORE_OPT (comma-separated KEY=VALUE),
NETCTL_ADVERTISE_ADDRESS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from controller.cluster import config as cluster_config
from controller.errors import UserError
from controller.output import examples


def add_global_options(p: argparse.ArgumentParser) -> None:
    opts = os.environ.get("NETCTL_CLUSTER_STORE_OPT", "")
    p.add_argument("--cluster-store", default=os.environ.get("NETCTL_CLUSTER_STORE") or None,
                   metavar="etcd://HOST:PORT[,...]",
                   help="the cluster store for overlay networks (Docker's --cluster-store)")
    p.add_argument("--cluster-store-opt", action="append",
                   default=[o for o in opts.split(",") if o], metavar="KEY=VALUE",
                   help="kv.cacertfile, kv.certfile, kv.keyfile (TLS), discovery.ttl, kv.timeout")
    p.add_argument("--advertise-address", default=os.environ.get("NETCTL_ADVERTISE_ADDRESS") or None,
                   metavar="IP|IFACE",
                   help="this host's underlay address: its VXLAN endpoint (Docker's --cluster-advertise)")


def config_of(args: argparse.Namespace) -> cluster_config.ClusterConfig | None:
    store = getattr(args, "cluster_store", None)
    if not store:
        return None
    return cluster_config.parse(store, args.advertise_address, args.cluster_store_opt)


STORE = "netctl --cluster-store etcd://10.0.0.1:2379 --advertise-address eth1"  # in examples


def add_parser(sub: Any) -> None:
    ov = sub.add_parser("overlay", help="overlay networks across hosts: agent, preflight checks")
    actions = ov.add_subparsers(metavar="ACTION")
    c = actions.add_parser("agent", help="keep this host's lease and its VXLAN entries in step with "
                           "the cluster store (long-running; run one per host)",
                           **examples(f"{STORE} overlay agent"))
    c.set_defaults(func=cmd_agent)
    c = actions.add_parser("preflight", help="check advertise address, underlay MTU and UDP 4789 "
                           "to every live peer; exit 1 on a problem",
                           **examples(f"{STORE} overlay preflight --timeout 5"))
    c.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for probes")
    c.set_defaults(func=cmd_preflight)
    c = actions.add_parser("peers", help="the remote endpoints this host programs, per network",
                           **examples(f"{STORE} overlay peers -o json"))
    c.set_defaults(func=cmd_peers)


def _required(args: argparse.Namespace) -> cluster_config.ClusterConfig:
    config = config_of(args)
    if config is None:
        raise UserError("--cluster-store (or NETCTL_CLUSTER_STORE) is required")
    return config


def cmd_agent(args: argparse.Namespace) -> int:
    from controller.cluster.agent import Agent

    agent = Agent(_required(args), args.state_dir, args.lock_timeout)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.shutdown())
    agent.run()
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from controller import render
    from controller.cluster import preflight
    from controller.kernel.netns import Sockets

    with Sockets() as sockets:
        checks = preflight.run(_required(args), sockets, args.timeout)
    rows = [[c.check, c.subject, "ok" if c.ok else "FAIL", c.detail] for c in checks]
    if args.output == "json":
        sys.stdout.write(json.dumps([c.__dict__ for c in checks], indent=2) + "\n")
    else:
        sys.stdout.write(render.table(["CHECK", "SUBJECT", "RESULT", "DETAIL"], rows))
    return 0 if all(c.ok for c in checks) else 1


def cmd_peers(args: argparse.Namespace) -> int:
    from controller import render
    from controller.cluster import ipam
    from controller.cluster.etcd import Etcd
    from controller.cluster.underlay import resolve_advertise
    from controller.kernel.netns import Sockets

    config = _required(args)
    with Sockets() as sockets:
        host = resolve_advertise(sockets, config.advertise)
    with Etcd(config.endpoints, timeout=config.timeout, ssl_context=config.ssl_context()) as client:
        snap = ipam.read(client)
    rows = [[name, p.ip, p.mac, p.vtep] for name in sorted(snap.networks)
            for p in snap.peers(name, host)]
    if args.output == "json":
        sys.stdout.write(json.dumps([dict(zip(("Network", "IP", "MAC", "VTEP"), r, strict=True))
                                     for r in rows], indent=2) + "\n")
    else:
        sys.stdout.write(render.table(["NETWORK", "IP", "MAC", "VTEP"], rows))
    return 0
