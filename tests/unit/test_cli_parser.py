"""The parser itself: every command's --help has examples; global options in both positions."""

from __future__ import annotations

import argparse

import pytest

from controller.cli import _commands, build_parser


def leaves() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(p.prog, p) for p in _commands(build_parser()) if p.get_default("func") is not None]


def test_every_command_has_examples_in_its_help() -> None:
    found = leaves()
    assert len(found) >= 29
    missing = [prog for prog, p in found if "examples:" not in (p.epilog or "")]
    assert missing == []


@pytest.mark.parametrize("argv", [
    ["network", "ls"], ["plan", "-f", "x.yaml"], ["dns", "status"], ["status"], ["container", "inspect", "a"],
])
def test_global_options_parse_the_same_before_and_after(argv: list[str]) -> None:
    parser = build_parser()
    options = ["-o", "json", "--state-dir", "/tmp/s", "--lock-timeout", "3", "--log-level", "debug"]
    before = vars(parser.parse_args([*options, *argv]))
    after = vars(parser.parse_args([*argv, *options]))
    assert {k: v for k, v in before.items() if k != "func"} == {k: v for k, v in after.items() if k != "func"}
    assert before["output"] == "json" and before["state_dir"] == "/tmp/s"
    default = vars(parser.parse_args(argv))
    assert default["output"] == "table" and default["lock_timeout"] == 30.0


def test_a_subcommands_own_short_option_wins() -> None:
    args = build_parser().parse_args(["network", "create", "-o", "com.docker.network.driver.mtu=1400", "n"])
    assert args.opt == ["com.docker.network.driver.mtu=1400"] and args.output == "table"
