"""`netctl container ...`, `netctl exec` and `netctl sandbox`."""

from __future__ import annotations

import argparse
from typing import Any

from controller import listing, render
from controller.cli.common import current, emit, examples_parser, inspect, session, strip_args
from controller.errors import NotFoundError, UserError

LS = """\
examples:
  netctl container ls
  netctl container ls -q --filter network=front
  netctl container ls --filter publish=8080 --format '{{.Names}} {{.Ports}}'
"""
INSPECT = """\
examples:
  netctl container inspect web
  netctl container inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' web
"""
RM = """\
examples:
  netctl container rm web db          all or nothing; the namespaces and veths go with them
"""
EXEC = """\
examples:
  netctl exec web -- ping -c1 db
  netctl exec web -- cat /etc/resolv.conf
"""
SANDBOX = """\
examples:
  netctl sandbox                      a shell on a throwaway host
  netctl sandbox -- sh -c 'netctl apply -f examples/seed-tour.yaml && netctl network ls'
  netctl sandbox --hosts 2 -- sh -c 'host1 netctl overlay peers'
"""


def add_parsers(sub: Any) -> None:
    ctr = sub.add_parser("container", help="list, inspect and remove containers").add_subparsers(
        metavar="ACTION")
    c = examples_parser(ctr, "ls", "list containers", LS, aliases=["list", "ps"])
    c.add_argument("-q", "--quiet", action="store_true", help="only container IDs")
    c.add_argument("--no-trunc", action="store_true", help="full container IDs")
    c.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=f"filter ({', '.join(listing.CONTAINER_FILTERS)}); repeatable")
    c.add_argument("--format", metavar="TEMPLATE", help="Go template, as Docker's ({{.Names}}, table ...)")
    c.set_defaults(func=cmd_container_ls)
    c = examples_parser(ctr, "inspect", "Docker-shaped JSON for containers", INSPECT)
    c.add_argument("names", nargs="+")
    c.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each container's JSON")
    c.set_defaults(func=cmd_container_inspect)
    c = examples_parser(ctr, "rm", "remove containers (their namespace, veths, rules and files)", RM,
                        aliases=["remove"])
    c.add_argument("names", nargs="+")
    c.add_argument("-f", "--force", action="store_true", help="no error for containers that do not exist")
    c.set_defaults(func=cmd_container_rm)

    c = examples_parser(sub, "exec", "run a command in a container's namespace "
                        "(hosts, resolv.conf, hostname)", EXEC)
    c.add_argument("name")
    c.add_argument("command", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_exec)

    c = examples_parser(sub, "sandbox", "run a command (default: a shell) on a throwaway host: "
                        "new network, mount, UTS and PID namespaces, private /run/netns, /etc/netns, state; "
                        "every process started in it ends with it", SANDBOX)
    c.add_argument("--hosts", type=int, default=0, metavar="N",
                   help="a multi-host lab instead: N sandbox hosts on an underlay bridge plus one "
                        "etcd, each running the overlay agent; CMD runs with host1..hostN on PATH")
    c.add_argument("command", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_sandbox)


def cmd_container_ls(args: argparse.Namespace) -> int:
    emit(args, *listing.listed(listing.CONTAINERS, current(args).target, args.filter, args.format,
                               args.quiet, args.no_trunc))
    return 0


def cmd_container_inspect(args: argparse.Namespace) -> int:
    return inspect(args, args.names, lambda target, name: target.container(name) is not None,
                   lambda outcome, name: render.container_inspect(outcome.target, outcome.observed, name),
                   "no such container: {name}")


def cmd_container_rm(args: argparse.Namespace) -> int:
    with session(args) as s:
        s.delete([("Container", n) for n in args.names], missing_ok=args.force)
    for n in args.names:
        print(n)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from controller.documents import stored_target
    from controller.kernel.enter import exec_in
    from controller.store import Store

    command = strip_args(args.command)
    if not command:
        raise UserError("exec: a command is required: netctl exec NAME -- CMD...")
    store = Store(args.state_dir)
    try:
        target = stored_target(store)
    finally:
        store.close()
    container = target.container(args.name) if target is not None else None
    if container is None:
        raise NotFoundError(f"no such container: {args.name}")
    exec_in(container.netns, container.hostname, command)
    return 127  # not reached: exec replaced the process


def cmd_sandbox(args: argparse.Namespace) -> int:
    from controller.kernel.sandbox import run

    if args.hosts:
        from controller.cluster.lab import run_lab

        return run_lab(args.hosts, strip_args(args.command))
    return run(strip_args(args.command), args.state_dir)
