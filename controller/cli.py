"""netctl's command line: argument parsing and output only; the work is in pipeline.

Exit codes: 0 ok, 1 apply failed, 2 invalid input, 3 lock/state problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from controller import load, logs, output, render
from controller.cluster import command as overlay_command
from controller.daemon import command as daemon_command
from controller.dns import command as dns_command
from controller.errors import ManifestError, NetctlError, NotFoundError, UserError
from controller.model import Action, Attachment, Document, Plan, Source

DEFAULT_STATE_DIR = "/var/lib/netctl"

EPILOG = """\
exit codes: 0 ok, 1 apply failed, 2 invalid input, 3 lock or state problem

examples:
  netctl sandbox -- sh -c 'netctl apply -f examples/seed-tour.yaml && netctl network ls'
  netctl plan -f topology.yaml        what apply would change (+ create, ~ update, - delete)
  netctl plan                         drift: what differs from what was applied
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # A terminal gets a progress bar for long applies; anything else gets one log line per action.
    quiet = "warning" if sys.stderr.isatty() else "info"
    logs.configure(args.log_format, args.log_level or getattr(args, "default_log_level", quiet))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.config:  # through the environment: the DNS server and the controller's children read it too
        os.environ["NETCTL_CONFIG"] = args.config
    try:
        result: int = args.func(args)
        return result
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was changed", file=sys.stderr)
        return exc.exit_code
    except NetctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netctl",
        description="Declarative container networking, Docker's model: YAML in, kernel converged.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--state-dir", default=os.environ.get("NETCTL_STATE_DIR", DEFAULT_STATE_DIR),
                   help="where allocations and applied objects live (default: %(default)s)")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.add_argument("--log-format", choices=("console", "json"), default="console")
    p.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                   help="default: warning on a terminal (long applies show a progress bar), "
                        "info otherwise (one line per action with its duration) and for the controller")
    p.add_argument("--lock-timeout", type=float, default=30.0,
                   help="seconds to wait for another netctl holding the state lock (default: 30)")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="the host configuration: Docker daemon.json's keys for the default bridge "
                        "(bip, fixed-cidr, mtu, icc, ip-masq, ip) and default-address-pools "
                        "(default: $NETCTL_CONFIG, else /etc/netctl/daemon.json if it exists)")
    overlay_command.add_global_options(p)  # --cluster-store, --cluster-store-opt, --advertise-address
    sub = p.add_subparsers(metavar="COMMAND")

    def files_arg(cmd: argparse.ArgumentParser, required: bool = True) -> None:
        cmd.add_argument("-f", "--filename", dest="files", action="append", required=required,
                         default=[], metavar="PATH", help="manifest file or folder (repeatable)")

    c = sub.add_parser("apply", help="create or update objects from manifests and converge the kernel")
    files_arg(c)
    c.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    c.set_defaults(func=cmd_apply)

    for name in ("plan", "diff"):
        c = sub.add_parser(name, help="show what apply would change; without -f: drift from what was applied")
        files_arg(c, required=False)
        c.add_argument("--detailed-exitcode", action="store_true",
                       help="exit 4 when the plan is not empty (as terraform plan -detailed-exitcode)")
        c.set_defaults(func=cmd_plan)

    c = sub.add_parser("delete", help="delete the objects named in manifests and everything they own")
    files_arg(c)
    c.add_argument("--ignore-not-found", action="store_true")
    c.set_defaults(func=cmd_delete)

    c = sub.add_parser("validate", help="check manifests (schema and semantics) without touching anything")
    files_arg(c)
    c.set_defaults(func=cmd_validate)

    net = sub.add_parser("network", help="Docker-shaped network commands").add_subparsers(metavar="ACTION")
    c = net.add_parser("ls", help="list networks")
    c.set_defaults(func=cmd_network_ls)
    c = net.add_parser("inspect", help="Docker's JSON for networks, from the kernel's state")
    c.add_argument("names", nargs="+")
    c.set_defaults(func=cmd_network_inspect)
    c = net.add_parser("create", help="create a network (recorded as if applied from a manifest)")
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
    c = net.add_parser("rm", help="remove networks (refused while containers use them)")
    c.add_argument("names", nargs="+")
    c.set_defaults(func=cmd_network_rm)
    c = net.add_parser("connect", help="connect a container to a network")
    c.add_argument("network")
    c.add_argument("container")
    c.add_argument("--ip", dest="ipv4")
    c.add_argument("--ip6", dest="ipv6")
    c.add_argument("--alias", action="append", default=[])
    c.set_defaults(func=cmd_network_connect)
    c = net.add_parser("disconnect", help="disconnect a container from a network")
    c.add_argument("network")
    c.add_argument("container")
    c.set_defaults(func=cmd_network_disconnect)

    ctr = sub.add_parser("container", help="list and inspect containers").add_subparsers(metavar="ACTION")
    c = ctr.add_parser("ls", help="list containers")
    c.set_defaults(func=cmd_container_ls)
    c = ctr.add_parser("inspect", help="Docker-shaped JSON for containers")
    c.add_argument("names", nargs="+")
    c.set_defaults(func=cmd_container_inspect)

    c = sub.add_parser("exec", help="run a command in a container's namespace (hosts, resolv.conf, hostname)")
    c.add_argument("name")
    c.add_argument("command", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_exec)

    c = sub.add_parser("sandbox", help="run a command (default: a shell) on a throwaway host: "
                       "new network, mount, UTS and PID namespaces, private /run/netns, /etc/netns, state; "
                       "every process started in it ends with it")
    c.add_argument("--hosts", type=int, default=0, metavar="N",
                   help="a multi-host lab instead: N sandbox hosts on an underlay bridge plus one "
                        "etcd, each running the overlay agent; CMD runs with host1..hostN on PATH")
    c.add_argument("command", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_sandbox)

    daemon_command.add_parser(sub)  # netctl status, netctl controller
    dns_command.add_parser(sub)  # netctl dns status|serve|hosts|listen
    overlay_command.add_parser(sub)  # netctl overlay agent|preflight|peers
    return p


# ---------------------------------------------------------------------------- helpers


def session(args: argparse.Namespace) -> Any:
    from controller.pipeline import Session

    return Session(args.state_dir, args.lock_timeout, progress=progress_for(args),
                   store_config=overlay_command.config_of(args))


def progress_for(args: argparse.Namespace) -> Callable[[Plan], Callable[[Action], None] | None]:
    """A progress bar on a terminal for longer plans; plain log lines otherwise."""

    def start(plan: Plan) -> Callable[[Action], None] | None:
        if not sys.stderr.isatty() or len(plan.actions) < 20 or args.log_format == "json":
            return None
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("applying", total=len(plan.actions))
        bar.start()
        done = [0]

        def step(_: Action) -> None:
            done[0] += 1
            bar.advance(task)
            if done[0] == len(plan.actions):
                bar.stop()

        return step

    return start


emit = output.emit  # kept for the subcommands below


def strip_args(command: list[str]) -> list[str]:
    return command[1:] if command and command[0] == "--" else command


# ---------------------------------------------------------------------------- commands


def cmd_apply(args: argparse.Namespace) -> int:
    docs = load.parse_paths(args.files)
    with session(args) as s:
        outcome = s.apply(docs, dry_run=args.dry_run)
    p = outcome.plan
    if args.output != "table":
        emit(args, render.plan_json(p), "")
    elif p.empty:
        print("no changes")
    else:
        sys.stdout.write(render.plan_text(p))
        if not args.dry_run and outcome.report is not None:
            print(f"applied in {outcome.report.seconds:.2f}s")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    with session(args) as s:
        outcome = s.apply(load.parse_paths(args.files), dry_run=True) if args.files else s.current()
    emit(args, render.plan_json(outcome.plan), render.plan_text(outcome.plan))
    return 4 if args.detailed_exitcode and not outcome.plan.empty else 0


def cmd_delete(args: argparse.Namespace) -> int:
    docs = load.parse_paths(args.files)
    with session(args) as s:
        outcome = s.delete([(d.kind, d.name) for d in docs], missing_ok=args.ignore_not_found)
    sys.stdout.write(render.plan_text(outcome.plan))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.documents import build, require_cluster_store

    docs = load.parse_paths(args.files)
    build(docs)
    require_cluster_store(docs, bool(getattr(args, "cluster_store", None)))
    print(f"valid: {len(docs)} object(s) in {len(args.files)} path(s)")
    return 0


def _current(args: argparse.Namespace) -> Any:
    with session(args) as s:
        return s.current()


def cmd_network_ls(args: argparse.Namespace) -> int:
    from controller.documents import build
    from controller.resolve import HostFacts, resolve

    with session(args) as s:
        docs, allocations = s.store.documents(), s.store.allocations()
        if s.store_hook is not None:  # overlay networks are listed on every host of the cluster
            docs, allocations = s.store_hook.listing(docs, s.store.origins(), allocations)
        # The built-in networks are listed even before anything was applied, as Docker does.
        spec = build(docs) if docs else load.build_spec([], load.load_builtin())
        target, _ = resolve(spec, allocations, HostFacts(), "")
    rows = render.network_rows(target)
    emit(args, [dict(zip(("ID", "Name", "Driver", "Scope"), r, strict=True)) for r in rows],
         render.table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
    return 0


def cmd_network_inspect(args: argparse.Namespace) -> int:
    outcome = _current(args)
    out = []
    for name in args.names:
        if outcome.target.network(name) is None:
            raise NotFoundError(f"network {name} not found")
        out.append(render.network_inspect(outcome.target, outcome.observed, name))
    sys.stdout.write(render.dumps(out) if args.output == "table" else "")
    if args.output != "table":
        emit(args, out, "")
    return 0


def cmd_network_create(args: argparse.Namespace) -> int:
    config = [
        {k: v for k, v in (("subnet", s), ("gateway", g), ("ipRange", r)) if v}
        for s, g, r in _zip_longest(args.subnet, args.gateway, args.ip_range)
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


def _zip_longest(*lists: list[str]) -> list[tuple[str | None, ...]]:
    from itertools import zip_longest

    return list(zip_longest(*lists))


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
        s.delete([("Network", n) for n in args.names])
    for n in args.names:
        print(n)
    return 0


def _edit_container(
    args: argparse.Namespace, name: str, change: Callable[[Document, dict[str, Any]], None]
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
        if not found:
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
            raise UserError(f"container {args.container} is not connected to network {args.network}")
        _set_attachments(body, kept or (Attachment("none"),))

    _edit_container(args, args.container, change)
    return 0


def cmd_container_ls(args: argparse.Namespace) -> int:
    outcome = _current(args)
    rows = render.container_rows(outcome.target)
    emit(args, [dict(zip(("ID", "Name", "Networks", "IPv4", "Ports"), r, strict=True)) for r in rows],
         render.table(["CONTAINER ID", "NAME", "NETWORKS", "IPV4", "PORTS"], rows))
    return 0


def cmd_container_inspect(args: argparse.Namespace) -> int:
    outcome = _current(args)
    out = []
    for name in args.names:
        if outcome.target.container(name) is None:
            raise NotFoundError(f"no such container: {name}")
        out.append(render.container_inspect(outcome.target, outcome.observed, name))
    emit(args, out, render.dumps(out))
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
    state_dir = args.state_dir
    return run(strip_args(args.command), state_dir)


_ = Source  # re-exported for type checkers of callers


if __name__ == "__main__":
    sys.exit(main())


def main_exit() -> None:
    sys.exit(main())
