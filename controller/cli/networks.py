"""`netctl network ...`: Docker's network commands, recorded as if applied from a manifest."""

from __future__ import annotations

import argparse
import datetime
import sys
from itertools import zip_longest
from typing import Any

from controller import listing, netops, render
from controller.cli.common import emit, examples_parser, inspect, session
from controller.errors import UserError
from controller.model import Target

LS = """\
examples:
  netctl network ls
  netctl network ls -q --filter driver=bridge
  netctl network ls --filter dangling=true --filter label=env=prod
  netctl network ls --format '{{.Name}}: {{.Driver}}'
  netctl network ls --format 'table {{.ID}}\\t{{.Name}}\\t{{.Internal}}'
"""
INSPECT = """\
examples:
  netctl network inspect front
  netctl network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' front
  netctl network inspect -f '{{json .Containers}}' front
"""
CREATE = """\
examples:
  netctl network create front
  netctl network create -d bridge --subnet 10.7.0.0/24 --gateway 10.7.0.1 front
  netctl network create --internal --ipv6 --subnet fd00:7::/64 -o com.docker.network.driver.mtu=1400 vault
"""
RM = """\
examples:
  netctl network rm front back        all or nothing: refused while a container uses one
"""
PRUNE = """\
examples:
  netctl network prune -f
  netctl network prune -f --filter label=env=test --filter until=24h
"""
CONNECT = """\
examples:
  netctl network connect --ip 10.7.0.20 --alias api front web
"""
DISCONNECT = """\
examples:
  netctl network disconnect front web
  netctl network disconnect -f front web   no error when web is not connected (or gone)
"""


def add_parsers(sub: Any) -> None:
    net = sub.add_parser("network", help="Docker-shaped network commands").add_subparsers(metavar="ACTION")
    c = examples_parser(net, "ls", "list networks", LS, aliases=["list"])
    c.add_argument("-q", "--quiet", action="store_true", help="only network IDs")
    c.add_argument("--no-trunc", action="store_true", help="full network IDs")
    c.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=f"filter ({', '.join(listing.NETWORK_FILTERS)}); repeatable")
    c.add_argument("--format", metavar="TEMPLATE", help="Go template, as Docker's ({{.Name}}, table ...)")
    c.set_defaults(func=cmd_network_ls)
    c = examples_parser(net, "inspect", "Docker's JSON for networks, from the kernel's state", INSPECT)
    c.add_argument("names", nargs="+")
    c.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each network's JSON")
    c.set_defaults(func=cmd_network_inspect)
    c = examples_parser(net, "create", "create a network (recorded as if applied from a manifest)", CREATE)
    c.add_argument("name")
    c.add_argument("-d", "--driver", default="bridge")
    c.add_argument("--subnet", action="append", default=[])
    c.add_argument("--gateway", action="append", default=[])
    c.add_argument("--ip-range", action="append", default=[])
    c.add_argument("--internal", action="store_true")
    c.add_argument("--ipv6", action="store_true")
    c.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=cmd_network_create)
    c = examples_parser(net, "rm", "remove networks (refused while containers use them)", RM,
                        aliases=["remove"])
    c.add_argument("names", nargs="+")
    c.set_defaults(func=cmd_network_rm)
    c = examples_parser(net, "prune", "remove every user-defined network no container uses", PRUNE)
    c.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    c.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="label=KEY[=VALUE], label!=KEY[=VALUE], until=DURATION|TIMESTAMP")
    c.set_defaults(func=cmd_network_prune)
    c = examples_parser(net, "connect", "connect a container to a network", CONNECT)
    c.add_argument("network")
    c.add_argument("container")
    c.add_argument("--ip", dest="ipv4")
    c.add_argument("--ip6", dest="ipv6")
    c.add_argument("--alias", action="append", default=[])
    c.set_defaults(func=cmd_network_connect)
    c = examples_parser(net, "disconnect", "disconnect a container from a network", DISCONNECT)
    c.add_argument("network")
    c.add_argument("container")
    c.add_argument("-f", "--force", action="store_true",
                   help="succeed when the container is not connected or does not exist")
    c.set_defaults(func=cmd_network_disconnect)


def listed_target(args: argparse.Namespace) -> Target:
    with session(args) as s:
        return netops.listed_target(s)


def cmd_network_ls(args: argparse.Namespace) -> int:
    emit(args, *listing.listed(listing.NETWORKS, listed_target(args), args.filter, args.format,
                               args.quiet, args.no_trunc))
    return 0


def cmd_network_inspect(args: argparse.Namespace) -> int:
    return inspect(args, args.names, lambda target, name: target.network(name) is not None,
                   lambda outcome, name: render.network_inspect(outcome.target, outcome.observed, name),
                   "network {name} not found")


def cmd_network_create(args: argparse.Namespace) -> int:
    config = [
        {k: v for k, v in (("subnet", s), ("gateway", g), ("ipRange", r)) if v}
        for s, g, r in zip_longest(args.subnet, args.gateway, args.ip_range)
    ]
    request = netops.NetworkRequest(args.name, args.driver, args.internal, args.ipv6,
                                    _pairs(args.opt, "--opt"), _pairs(args.label, "--label"), config)
    with session(args) as s:
        net = netops.create(s, request)
    print(net.id if net else args.name)
    return 0


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def cmd_network_rm(args: argparse.Namespace) -> int:
    with session(args) as s:
        netops.remove(s, args.names)
    for n in args.names:
        print(n)
    return 0


def cmd_network_prune(args: argparse.Namespace) -> int:
    keep = listing.prune_filter(args.filter, datetime.datetime.now(datetime.UTC))
    doomed = netops.unused(listed_target(args), keep)
    if not args.force and not _confirmed(
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    ):
        return 0
    with session(args) as s:
        netops.prune(s, doomed)
    emit(args, doomed, "Deleted Networks:\n" + "".join(f"{n}\n" for n in doomed) if doomed else "")
    return 0


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UserError("network prune asks for confirmation: run it on a terminal or with -f")
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_network_connect(args: argparse.Namespace) -> int:
    with session(args) as s:
        netops.connect(s, args.network, args.container, args.ipv4, args.ipv6, args.alias or ())
    return 0


def cmd_network_disconnect(args: argparse.Namespace) -> int:
    with session(args) as s:
        netops.disconnect(s, args.network, args.container, args.force)
    return 0
