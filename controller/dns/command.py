"""`netctl dns ...`: the subcommands (parsing here, kept out of cli.py's way; imports are
lazy so that other commands do not pay for them)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller.output import examples

HELP = """\
The embedded DNS server answers on 127.0.0.11 inside every container attached to a
user-defined network. `netctl apply` starts it (detached, one per state directory) and
tells it about every change; these commands are for looking at it and for the host.
"""


def add_parser(sub: Any) -> None:
    dns = sub.add_parser("dns", help="the embedded DNS server (127.0.0.11 in containers)",
                         description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = dns.add_subparsers(metavar="ACTION")
    c = actions.add_parser("status", help="pid, generation, containers served, upstreams, counters",
                           **examples("netctl dns status", "netctl dns status -o json"))
    c.set_defaults(func=cmd_status)
    c = actions.add_parser("serve", help="run the server in the foreground (apply starts one itself)",
                           **examples("netctl dns serve       (apply starts one: this is for debugging)"))
    c.set_defaults(func=cmd_serve)
    c = actions.add_parser("hosts", help="hosts(5) lines for every container, for the host",
                           **examples("netctl dns hosts >> /etc/hosts"))
    c.set_defaults(func=cmd_hosts)
    c = actions.add_parser(
        "listen", help="answer container names for the host itself on ADDR[:PORT] (none: stop)",
        **examples("netctl dns listen 127.0.0.153:53", "netctl dns listen       (stop answering the host)"),
    )
    c.add_argument("addresses", nargs="*", metavar="ADDR[:PORT]")
    c.set_defaults(func=cmd_listen)


def cmd_status(args: argparse.Namespace) -> int:
    from controller.dns.control import Paths, alive, request

    paths = Paths(args.state_dir)
    if not alive(paths):
        print("not running")
        return 1
    try:
        status = request(paths, "status")
    except (OSError, ValueError) as exc:
        print(f"running, but not answering: {exc}", file=sys.stderr)
        return 1
    if args.output != "table":
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
        return 0
    print(f"pid {status['pid']} (supervisor {status['supervisor']}), generation {status['generation']}, "
          f"up {status['uptime']}s")
    print(f"containers: {' '.join(status['containers']) or '-'}")
    print(f"host listeners: {' '.join(status['host_listeners']) or '-'}")
    print(f"upstreams: {' '.join(status['upstreams']) or '-'}")
    print("queries: " + ", ".join(f"{k} {v}" for k, v in status["queries"].items()))
    for key, error in sorted(status["errors"].items()):
        print(f"error: {key}: {error}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.dns.supervisor import serve

    return serve(args.state_dir)


def cmd_hosts(args: argparse.Namespace) -> int:
    from controller.dns.control import Paths

    try:
        with open(Paths(args.state_dir).hosts, encoding="utf-8") as f:
            sys.stdout.write(f.read())
    except FileNotFoundError:
        pass  # nothing published yet
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from controller.dns.control import DnsUnavailable, Paths, alive, set_listen, wait_for
    from controller.errors import UserError

    paths = Paths(args.state_dir)
    try:
        set_listen(paths, args.addresses)
    except ValueError as exc:
        raise UserError(f"dns listen: {exc}") from exc
    if args.addresses or alive(paths):
        try:
            status = wait_for(paths, 0, start=bool(args.addresses))
        except DnsUnavailable as exc:
            print(f"error: {exc} (see {paths.log})", file=sys.stderr)
            return 1
        errors = {k: v for k, v in status["errors"].items() if k.startswith("h:")}
        for key, error in errors.items():
            print(f"error: {key[2:]}: {error}", file=sys.stderr)
        if errors:
            return 1
    for a in args.addresses:
        print(f"answering container names for the host on {a}")
    return 0
