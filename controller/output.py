"""How commands print a result: `-o table|json|yaml` (the table is the command's own text)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml


def emit(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.output == "json":
        sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    elif args.output == "yaml":
        sys.stdout.write(yaml.safe_dump(value, sort_keys=False))
    else:
        sys.stdout.write(text)


def examples(*lines: str) -> dict[str, Any]:
    """add_parser() keywords for a --help that ends with these example command lines."""
    return {"epilog": "examples:\n" + "".join(f"  {line}\n" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}
