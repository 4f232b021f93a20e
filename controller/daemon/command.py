"""`netctl status` and `netctl controller`: the controller's subcommands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller import render
from controller.cluster import command as overlay_command
from controller.errors import UserError
from controller.output import emit, examples


def add_parser(sub: Any) -> None:
    c = sub.add_parser("status", help="per object: source, state, last reconcile", epilog=STATUS_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Per network and container: its source, its state, the last reconcile.")
    c.add_argument("--wide", action="store_true", help="every column, nothing shortened (SOURCE, DURATION)")
    c.set_defaults(func=cmd_status)

    c = sub.add_parser("controller", help="keep the kernel equal to a folder of manifests (long-running; "
                       "SIGHUP: full resync, SIGTERM: stop and leave the network as it is)",
                       **examples("netctl controller --manifests /etc/netctl/manifests",
                                  "netctl controller --manifests m/ --metrics-address 127.0.0.1:9440",
                                  "netctl controller --manifests m/ --api-socket /run/netctl-api.sock "
                                  "--api-group docker"))
    c.add_argument("--manifests", required=True, metavar="DIR",
                   help="the watched folder: *.yaml/*.yml anywhere under it are the desired state")
    c.add_argument("--resync-interval", type=float, default=30.0, metavar="SECONDS",
                   help="full resync against the kernel every SECONDS (default: 30)")
    c.add_argument("--metrics-address", default=None, metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off; "
                        ":PORT or 0.0.0.0:PORT is every address of the host, with a warning)")
    c.add_argument("--api-socket", default=None, metavar="PATH",
                   help="serve the API (Docker Engine API network endpoints) on this unix socket "
                        "(default: api.sock in the state dir; mode 0660)")
    c.add_argument("--api-group", default=None, metavar="GROUP",
                   help="the group that may connect to the API socket (default: root's)")
    c.set_defaults(func=cmd_controller, default_log_level="info")


STATUS_EPILOG = """\
states:
  applied     applied with netctl apply (or network create), no controller has reconciled it since
  pending     the controller has it queued (new, changed, or waiting for a retry)
  converged   the kernel matches it (REASON: when drift was last repaired)
  failed      the last attempt failed; REASON says why, the controller retries with backoff

examples:
  netctl status
  netctl status --wide
  netctl status -o json
"""
REASON_WIDTH = 48


def _shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_status(args: argparse.Namespace) -> int:
    from controller.daemon.controller import controller_running
    from controller.store import Store

    store = Store(args.state_dir)
    try:
        origins = store.origins()
        docs = {(d.kind, d.name): d for d in store.documents()}
        status = {(r.kind, r.name): r for r in store.status_rows()}
    finally:
        store.close()
    running = controller_running(args.state_dir)
    headers = (["KIND", "NAME", "SOURCE", "STATE", "REASON", "LAST-RECONCILE", "DURATION"] if args.wide
               else ["KIND", "NAME", "STATE", "REASON", "LAST-RECONCILE"])
    rows, out = [], []
    for key in sorted(docs.keys() | status.keys()):
        doc, row = docs.get(key), status.get(key)
        if doc is None and (row is None or key[0] != "File"):
            continue  # removed since the controller's last reconcile
        origin = origins.get(key, "")
        source = f"{origin.split(':', 1)[0]}:{doc.source}" if doc else (row.source if row else "")
        state, reason = (row.state, row.reason) if row else ("applied", "")
        if row and row.repaired and state == "converged":
            reason = f"drift repaired at {row.repaired}" + (f": {reason}" if reason else "")
        at, seconds = (row.at, f"{row.seconds:.3f}s") if row and row.at else ("", "")
        if args.wide:
            rows.append([key[0], key[1], source, state, reason, at, seconds])
        else:  # narrow: a terminal's width; the time of day of the reconcile, the reason cut
            rows.append([key[0], key[1], state, _shortened(reason, REASON_WIDTH), at[11:19] or at])
        out.append({"Kind": key[0], "Name": key[1], "Source": source, "Origin": origin, "State": state,
                    "Reason": row.reason if row else "", "LastReconcile": at,
                    "Seconds": row.seconds if row else None,
                    "DriftRepairedAt": row.repaired if row else ""})
    emit(args, out, render.table(headers, rows))
    if args.output == "table":
        note = (f"controller: running (pid {running[0]}), watching {running[1]}" if running
                else "controller: not running; states are as of its last reconcile")
        print(note, file=sys.stderr)
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    from controller.daemon.controller import Options, run
    from controller.daemon.metrics import exposure_warning

    try:
        warning = exposure_warning(args.metrics_address) if args.metrics_address else None
    except ValueError as e:
        raise UserError(str(e)) from None
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    from controller import version
    from controller.api.server import group_exists

    if args.api_group and not group_exists(args.api_group):
        raise UserError(f"--api-group {args.api_group}: no such group")
    if args.api_group and not args.api_socket:
        print(f"warning: the API socket is in the state dir, which is root's alone (0700): members of "
              f"{args.api_group} reach it only with --api-socket elsewhere, e.g. /run/netctl-api.sock",
              file=sys.stderr)
    return run(Options(args.manifests, args.state_dir, args.resync_interval, args.metrics_address,
                       args.lock_timeout, cluster_config=overlay_command.config_of(args),
                       api_socket=args.api_socket, api_group=args.api_group, version=version()))


