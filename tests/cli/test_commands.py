"""The command line's surface: every option of every command explains itself; `--version`."""

from __future__ import annotations

import argparse

from bot import __version__
from bot.cli import build_parser
from tests.records import sesguard


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    commands = subcommands(parser)
    assert set(commands) == {"scan", "demo", "serve", "socket", "poll", "worker"}
    silent = [f"{name} {'/'.join(action.option_strings) or action.dest}"
              for name, command in [("sesguard", parser), *commands.items()]
              for action in command._actions
              if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert silent == []


def test_version_from_the_command_line(tmp_path):
    done = sesguard("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"sesguard {__version__}")
