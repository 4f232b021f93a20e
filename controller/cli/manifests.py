"""The manifest commands: apply, plan (diff), delete, validate."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller import load, planview, render
from controller.cli.common import emit, examples_parser, session, use_color
from controller.errors import UserError
from controller.model import Document

APPLY_EXAMPLES = """\
examples:
  netctl apply -f topology.yaml            converge the kernel to the file
  netctl apply -f manifests/ -f extra.yaml  every manifest in a folder, and one more
  netctl apply -f topology.yaml --dry-run  the plan, nothing changed
  netctl apply -f topology.yaml -v         every kernel object in the plan, not only the summary
"""
PLAN_EXAMPLES = """\
examples:
  netctl plan -f topology.yaml             what apply would change, grouped by network and container
  netctl plan                              drift: what differs from what was applied
  netctl plan -f t.yaml --detailed-exitcode && echo up to date
  netctl -o json plan -f topology.yaml     the actions, for machines
"""
DELETE_EXAMPLES = """\
examples:
  netctl delete -f topology.yaml           the networks and containers the file names
  netctl delete -f old.yaml --ignore-not-found
"""
VALIDATE_EXAMPLES = """\
examples:
  netctl validate -f topology.yaml         schema and semantics, nothing touched (exit 2 when invalid)
  netctl validate -f topology.yaml -o json errors as a JSON list on stdout
"""


def add_parsers(sub: Any) -> None:
    c = examples_parser(sub, "apply", "create or update objects from manifests and converge the kernel",
                        APPLY_EXAMPLES)
    _files(c)
    c.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    c.add_argument("-v", "--verbose", action="store_true",
                   help="print every kernel object of the plan (default: one line per network/container)")
    c.set_defaults(func=cmd_apply)

    for name in ("plan", "diff"):
        c = examples_parser(sub, name, "show what apply would change; without -f: drift from what was "
                            "applied", PLAN_EXAMPLES)
        _files(c, required=False)
        c.add_argument("--detailed-exitcode", action="store_true",
                       help="exit 4 when the plan is not empty (as terraform plan -detailed-exitcode)")
        c.set_defaults(func=cmd_plan)

    c = examples_parser(sub, "delete", "delete the objects named in manifests and everything they own",
                        DELETE_EXAMPLES)
    _files(c)
    c.add_argument("--ignore-not-found", action="store_true", help="objects already gone are not an error")
    c.set_defaults(func=cmd_delete)

    c = examples_parser(sub, "validate", "check manifests (schema and semantics) without touching anything",
                VALIDATE_EXAMPLES)
    _files(c)
    c.set_defaults(func=cmd_validate)


def _files(cmd: argparse.ArgumentParser, required: bool = True) -> None:
    cmd.add_argument("-f", "--filename", dest="files", action="append", required=required,
                     default=[], metavar="PATH", help="manifest file or folder (repeatable)")
    cmd.add_argument("--allow-empty", action="store_true",
                     help="no manifests in the paths is a warning, not an error")


def documents(args: argparse.Namespace) -> list[Document]:
    """The documents of -f, refusing paths that hold none (kubectl: "no objects passed")."""
    docs = load.parse_paths(args.files)
    if not docs and args.files:
        where = ", ".join(args.files)
        if not args.allow_empty:
            raise UserError(f"no objects found in {where} (--allow-empty to accept that)")
        print(f"warning: no objects found in {where}", file=sys.stderr)
    return docs


def cmd_apply(args: argparse.Namespace) -> int:
    docs = documents(args)
    with session(args) as s:
        outcome = s.apply(docs, dry_run=args.dry_run)
    warn(outcome.notes)
    p = outcome.plan
    if args.output != "table":
        emit(args, render.plan_json(p), "")
        return 0
    color = use_color(sys.stdout)
    sys.stdout.write(planview.plan_view(p, outcome.target, color=color, verbose=args.verbose or args.dry_run))
    if not p.empty and not args.dry_run and outcome.report is not None:
        print(f"applied in {outcome.report.seconds:.2f}s")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    with session(args) as s:
        outcome = s.apply(documents(args), dry_run=True) if args.files else s.current()
    warn(outcome.notes)
    text = "" if args.output != "table" else planview.plan_view(
        outcome.plan, outcome.target, color=use_color(sys.stdout))
    emit(args, render.plan_json(outcome.plan), text)
    return 4 if args.detailed_exitcode and not outcome.plan.empty else 0


def cmd_delete(args: argparse.Namespace) -> int:
    docs = documents(args)
    with session(args) as s:
        outcome = s.delete([(d.kind, d.name) for d in docs], missing_ok=args.ignore_not_found)
    emit(args, render.plan_json(outcome.plan),
         planview.plan_view(outcome.plan, outcome.target, color=use_color(sys.stdout), verbose=False))
    return 0


def warn(notes: list[str]) -> None:
    """What the pipeline noticed around the change (another firewall dropping what netctl accepts)."""
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.documents import build, require_cluster_store

    docs = documents(args)
    build(docs)
    require_cluster_store(docs, bool(getattr(args, "cluster_store", None)))
    summary = f"{len(docs)} object(s) in {len(args.files)} path(s)"
    emit(args, [], f"valid: {summary}\n")  # machines get the (empty) list of diagnostics
    return 0
