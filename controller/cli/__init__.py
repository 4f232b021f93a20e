"""netctl's command line: argument parsing and output only; the work is in pipeline.

One module per group of commands (manifests, networks, containers, about); `listing` is the
pure part of `ls` (records, filters, formats). Global options are accepted before and after
the subcommand (`netctl -o json network ls` == `netctl network ls -o json`), as Docker's and
kubectl's users type them.

Exit codes: 0 ok, 1 apply failed, 2 invalid input, 3 lock/state problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from controller.cli import about, containers, manifests, networks, topology
from controller.cluster import command as overlay_command
from controller.daemon import command as daemon_command
from controller.dns import command as dns_command
from controller.errors import ManifestError, NetctlError

DEFAULT_STATE_DIR = "/var/lib/netctl"

EPILOG = """\
exit codes: 0 ok, 1 apply failed, 2 invalid input, 3 lock or state problem, 4 plan not empty
(plan --detailed-exitcode)

examples:
  netctl sandbox -- sh -c 'netctl apply -f examples/seed-tour.yaml && netctl network ls'
  netctl plan -f topology.yaml        what apply would change (+ create, ~ update, - delete)
  netctl plan                         drift: what differs from what was applied
  netctl network ls -o json           global options go before or after the subcommand
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from controller import logs  # after parsing: --help, --version and errors of usage skip structlog
    # A terminal gets a progress bar for long applies; anything else gets one log line per action.
    quiet = "warning" if sys.stderr.isatty() else "info"
    logs.configure(args.log_format, args.log_level or getattr(args, "default_log_level", quiet))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.config:  # through the environment: the DNS server and the controller's children read it too
        os.environ["NETCTL_CONFIG"] = args.config
    if args.firewall_backend:
        os.environ["NETCTL_FIREWALL_BACKEND"] = args.firewall_backend
    try:
        result: int = args.func(args)
        return result
    except ManifestError as exc:
        if args.output == "json":  # machines: the diagnostics on stdout, as a list
            print(json.dumps([{"file": p.file, "line": p.line, "path": p.path, "message": p.message,
                               "severity": "error"} for p in exc.problems], indent=2))
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was changed", file=sys.stderr)
        return exc.exit_code
    except NetctlError as exc:
        if args.output == "json":
            print(json.dumps([{"file": "", "line": 0, "path": "", "message": str(exc), "severity": "error"}],
                             indent=2))
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def global_options(p: argparse.ArgumentParser, after: bool = False) -> None:
    """The options every subcommand takes. Repeated on each subcommand (`after`) with
    SUPPRESS defaults, so that a value given there wins and one not given leaves the
    top-level value (or its default) alone."""
    def add(*flags: str, **kw: object) -> None:
        if after:
            taken = set(p._option_string_actions)  # a subcommand's own -o (network create --opt)
            flags = tuple(f for f in flags if f not in taken)
            if not flags:
                return
            kw["default"] = argparse.SUPPRESS
        p.add_argument(*flags, **kw)  # type: ignore[arg-type]

    add("--state-dir", default=os.environ.get("NETCTL_STATE_DIR", DEFAULT_STATE_DIR),
        help="where allocations and applied objects live (default: $NETCTL_STATE_DIR or %(default)s)"
        if not after else argparse.SUPPRESS)
    add("-o", "--output", choices=("table", "json", "yaml"), default="table",
        help="output format (default: table)")
    add("--log-format", choices=("console", "json"), default="console",
        help=None if not after else argparse.SUPPRESS)
    add("--log-level", default=None, choices=("debug", "info", "warning", "error"),
        help="default: warning on a terminal (long applies show a progress bar), "
             "info otherwise (one line per action with its duration; a firewall transaction is one) "
             "and for the controller"
        if not after else argparse.SUPPRESS)
    add("--lock-timeout", type=float, default=30.0,
        help="seconds to wait for another netctl holding the state lock (default: 30)"
        if not after else argparse.SUPPRESS)
    add("--config", metavar="FILE", default=None,
        help="the host configuration: Docker daemon.json's keys for the default bridge "
             "(bip, fixed-cidr, mtu, icc, ip-masq, ip), default-address-pools and "
             "bridge-accept-fwmark (nftables) "
             "(default: $NETCTL_CONFIG, else /etc/netctl/daemon.json if it exists)"
        if not after else argparse.SUPPRESS)
    add("--firewall-backend", choices=("iptables", "nftables"), default=None,
        help="iptables or nftables (default: $NETCTL_FIREWALL_BACKEND, else the backend the state "
             "was last applied with, else iptables); a change is one planned migration"
        if not after else argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netctl",
        description="Declarative container networking, Docker's model: YAML in, kernel converged.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=about.VersionAction)
    global_options(p)
    overlay_command.add_global_options(p)  # --cluster-store, --cluster-store-opt, --advertise-address
    sub = p.add_subparsers(metavar="COMMAND")
    manifests.add_parsers(sub)  # apply, plan, diff, delete, validate
    networks.add_parsers(sub)  # network ls|inspect|create|rm|prune|connect|disconnect
    containers.add_parsers(sub)  # container ls|inspect|rm, exec, sandbox
    topology.add_parsers(sub)  # graph, explain
    daemon_command.add_parser(sub)  # netctl status, netctl controller
    dns_command.add_parser(sub)  # netctl dns status|serve|hosts|listen
    overlay_command.add_parser(sub)  # netctl overlay agent|preflight|peers
    about.add_parsers(sub, build_parser)  # version, completion, man
    for command in _commands(p):
        global_options(command, after=True)
    return p


def _commands(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand's parser, nested ones included (`network ls`)."""
    out = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                out.append(child)
                out += _commands(child)
    return out


def main_exit() -> None:
    sys.exit(main())
