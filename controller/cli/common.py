"""What the subcommands share: the pipeline session, the progress display, output."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from controller import output
from controller.cluster import command as overlay_command
from controller.errors import NotFoundError
from controller.model import Action, Plan
from controller.render import describe


def session(args: argparse.Namespace) -> Any:
    from controller.pipeline import Session

    return Session(args.state_dir, args.lock_timeout, progress=progress_for(args),
                   store_config=overlay_command.config_of(args))


def progress_for(args: argparse.Namespace) -> Callable[[Plan], Callable[[Action], None] | None]:
    """A progress bar on a terminal for longer plans; plain log lines otherwise."""

    def start(plan: Plan) -> Callable[[Action], None] | None:
        if not sys.stderr.isatty() or len(plan.actions) < 20 or args.log_format == "json":
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        total = len(plan.actions)
        bar = Progress(BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"), transient=True)
        task = bar.add_task(f"applying 0/{total}", total=total)
        bar.start()
        done = [0]

        def step(action: Action) -> None:
            done[0] += 1
            # `applying 143/1423 veth web-3`: how far, and what it is doing now.
            bar.update(task, advance=1, description=f"applying {done[0]}/{total} {describe(action.resource)}")
            if done[0] == total:
                bar.stop()

        return step

    return start


emit = output.emit


def use_color(stream: TextIO) -> bool:
    """ANSI colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def strip_args(command: list[str]) -> list[str]:
    return command[1:] if command and command[0] == "--" else command


def current(args: argparse.Namespace) -> Any:
    with session(args) as s:
        return s.current()


def examples_parser(
    sub: Any, name: str, help_text: str, examples: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with examples, kept as written."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    return parser


def inspect(args: argparse.Namespace, names: Sequence[str], exists: Callable[[Any, str], bool],
            shape: Callable[[Any, str], dict[str, Any]], missing: str) -> int:
    """`network inspect` / `container inspect`: Docker's JSON of each name (all must exist),
    or each through a Go template (`-f`)."""
    from controller import gotemplate, render

    outcome = current(args)
    for name in names:
        if not exists(outcome.target, name):
            raise NotFoundError(missing.format(name=name))
    out = [shape(outcome, name) for name in names]
    if args.format:
        sys.stdout.write("".join(gotemplate.render(args.format, item) + "\n" for item in out))
    else:
        emit(args, out, render.dumps(out))
    return 0
