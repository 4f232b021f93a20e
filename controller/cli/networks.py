"""`netctl network ...`: Docker's network commands, recorded as if applied from a manifest."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable
from itertools import zip_longest
from typing import Any

from controller import load, render
from controller.cli import listing
from controller.cli.common import emit, examples_parser, inspect, session
from controller.errors import NotFoundError, UserError
from controller.model import Attachment, Document, Source, Target

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
    """The networks as `ls` shows them: stored (and, with a cluster store, every host's
    overlays), resolved without observing the kernel."""
    from controller.documents import build
    from controller.resolve import HostFacts, resolve

    with session(args) as s:
        docs, allocations = s.store.documents(), s.store.allocations()
        if s.store_hook is not None:  # overlay networks are listed on every host of the cluster
            docs, allocations = s.store_hook.listing(docs, s.store.origins(), allocations)
        # The built-in networks are listed even before anything was applied, as Docker does.
        spec = build(docs) if docs else load.build_spec([], load.load_builtin())
        target, _ = resolve(spec, allocations, HostFacts(), "")
    return target


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
    spec: dict[str, Any] = {"driver": args.driver, "internal": args.internal, "enableIPv6": args.ipv6,
                            "options": _pairs(args.opt, "--opt")}
    if config:
        spec["ipam"] = {"config": config}
    body = {"apiVersion": "netctl/v1", "kind": "Network",
            "metadata": {"name": args.name, "labels": _pairs(args.label, "--label")}, "spec": spec}
    # A document as a manifest would give it (no YAML round trip): apply validates it.
    docs = [Document("Network", args.name, body, Source("<network create>", 0))]
    with session(args) as s:
        if any(d.kind == "Network" and d.name == args.name for d in s.store.documents()):
            raise UserError(f"network with name {args.name} already exists")
        outcome = s.apply(docs, origin="cli")
        net = outcome.target.network(args.name)
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
    # All or nothing (Docker removes what it can): a refused name changes nothing.
    with session(args) as s:
        s.delete([("Network", n) for n in args.names])
    for n in args.names:
        print(n)
    return 0


def cmd_network_prune(args: argparse.Namespace) -> int:
    keep = listing.prune_filter(args.filter, datetime.datetime.now(datetime.UTC))
    target = listed_target(args)
    used = {e.network for c in target.containers for e in c.endpoints}
    doomed = [n.name for n in target.networks if not n.builtin and n.name not in used and keep(n)]
    if not args.force and not _confirmed(
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    ):
        return 0
    if doomed:
        with session(args) as s:
            s.delete([("Network", n) for n in doomed], missing_ok=True)
    emit(args, doomed, "Deleted Networks:\n" + "".join(f"{n}\n" for n in doomed) if doomed else "")
    return 0


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UserError("network prune asks for confirmation: run it on a terminal or with -f")
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _edit_container(
    args: argparse.Namespace, name: str, change: Callable[[Document, dict[str, Any]], None],
    missing_ok: bool = False,
) -> None:
    def edit(docs: list[Document]) -> list[Document]:
        out = []
        found = False
        for d in docs:
            if d.kind == "Container" and d.name == name:
                body = json.loads(json.dumps(d.body))
                change(d, body)
                found = True
                d = Document(d.kind, d.name, body, d.source)
            out.append(d)
        if not found and not missing_ok:
            raise NotFoundError(f"no container named {name!r}")
        return out

    with session(args) as s:
        s.edit(edit)


def _set_attachments(body: dict[str, Any], attachments: tuple[Attachment, ...]) -> None:
    body.setdefault("spec", {})["networks"] = load.attachment_items(attachments)


def cmd_network_connect(args: argparse.Namespace) -> int:
    def change(doc: Document, body: dict[str, Any]) -> None:
        nets = load.container_spec(doc).networks
        if any(a.network == args.network for a in nets):
            raise UserError(f"container {args.container} is already attached to network {args.network}")
        added = Attachment(args.network, ipv4_address=args.ipv4, ipv6_address=args.ipv6,
                           aliases=tuple(args.alias or ()))
        _set_attachments(body, (*nets, added))

    _edit_container(args, args.container, change)
    return 0


def cmd_network_disconnect(args: argparse.Namespace) -> int:
    def change(doc: Document, body: dict[str, Any]) -> None:
        nets = load.container_spec(doc).networks
        kept = tuple(a for a in nets if a.network != args.network)
        if len(kept) == len(nets):
            if args.force:
                return
            raise UserError(f"container {args.container} is not connected to network {args.network}")
        _set_attachments(body, kept or (Attachment("none"),))

    _edit_container(args, args.container, change, missing_ok=args.force)
    return 0
