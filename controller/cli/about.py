"""`netctl version`, `netctl completion SHELL` and `netctl man`: about the tool itself.

Completion scripts and the man page are generated from the parser (shtab, argparse-manpage),
so they never disagree with `--help`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from controller import version
from controller.cli.common import emit, examples_parser

SHELLS = ("bash", "zsh", "fish", "tcsh")
VERSION_EXAMPLES = """\
examples:
  netctl version
  netctl --version
  netctl version -o json
"""
COMPLETION_EXAMPLES = """\
examples:
  netctl completion bash > /etc/bash_completion.d/netctl
  netctl completion zsh > "${fpath[1]}/_netctl"
  netctl completion fish > ~/.config/fish/completions/netctl.fish
"""
MAN_EXAMPLES = """\
examples:
  netctl man > /usr/local/share/man/man1/netctl.1 && man netctl
"""




class VersionAction(argparse.Action):
    """`--version`, looked up only when asked for (importlib.metadata costs ~20 ms at start)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print netctl's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"netctl version {version()}")
        parser.exit()


def add_parsers(sub: Any, parser: Callable[[], argparse.ArgumentParser]) -> None:
    """`parser` builds the whole parser again: what completion and man describe."""
    c = examples_parser(sub, "version", "versions of netctl and of what it drives (as docker version)",
                        VERSION_EXAMPLES)
    c.set_defaults(func=cmd_version)
    c = examples_parser(sub, "completion", "print a shell completion script", COMPLETION_EXAMPLES)
    c.add_argument("shell", choices=SHELLS)
    c.set_defaults(func=lambda args: cmd_completion(args, parser()))
    c = examples_parser(sub, "man", "print the manual page (roff), generated from --help", MAN_EXAMPLES)
    c.set_defaults(func=lambda args: cmd_man(args, parser()))


def components() -> dict[str, str]:
    return {
        "Version": version(),
        "Python": platform.python_version(),
        "pyroute2": _package("pyroute2"),
        "Kernel": os.uname().release,
        "iptables": _tool(["iptables", "--version"], r"v[\d.]+(?: \(\w+\))?"),
        "nft": _tool(["nft", "--version"], r"v[\d.]+"),
        "OS/Arch": f"{sys.platform}/{platform.machine()}",
    }


def _package(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tool(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    found = re.search(pattern, out)
    return found.group(0) if found else out.strip() or "unknown"


def cmd_version(args: argparse.Namespace) -> int:
    facts = components()
    width = max(len(k) for k in facts) + 2
    emit(args, facts, "netctl:\n" + "".join(f" {k + ':':<{width}}{v}\n" for k, v in facts.items()))
    return 0


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import shtab

    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


def cmd_man(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from argparse_manpage.manpage import Manpage

    manpage = Manpage(parser, _data={"version": version(), "project_name": "netctl",
                                     "description": parser.description, "url": "", "authors": []})
    sys.stdout.write(str(manpage))
    return 0
