"""The command line's surface (SPEC §2): `sesguard` and `python -m bot` are one program; usage errors exit 2
with one line saying what is wrong; every option of every command explains itself; `--version`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import __version__
from bot.cli.commands import build_parser
from tests.support import records as r
from tests.support.records import at, sesguard

pytestmark = pytest.mark.processes

# The console script pip installed beside this interpreter (`[project.scripts]`).
SCRIPT = Path(sys.executable).with_name("sesguard")


def installed_sesguard(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `sesguard` console script, in the clean environment `records.sesguard` gives `python -m bot`."""
    if not SCRIPT.exists():
        pytest.skip(f"no sesguard console script beside {sys.executable}: sesguard is not installed here")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SESGUARD_", "DATABASE_URL", "AWS_"))}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=clean,
                          check=False)


USAGE_ERRORS = {
    "no command": ([], "the following arguments are required: COMMAND"),
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    "scan without a path": (["scan"], "the following arguments are required: PATH_OR_URL"),
    "unknown identity key": (["scan", "--identity-key", "session", "trail.json"], "--identity-key: invalid choice"),
    "not a number": (["scan", "--forget-days", "soon", "trail.json"], "--forget-days: invalid float value: 'soon'"),
    "negative": (["scan", "--learning-days", "-1", "trail.json"], "--learning-days must be a number, not negative"),
    "unknown option": (["scan", "--after", "2025-01-01", "trail.json"], "unrecognized arguments: --after"),
    "port out of range": (["serve", "--port", "70000"], "--port must be between 0 and 65535"),
}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    commands = subcommands(parser)
    assert set(commands) == {"scan", "demo", "serve", "socket", "poll", "worker", "investigate", "ip-ranges"}
    silent = [f"{name} {'/'.join(action.option_strings) or action.dest}"
              for name, command in [("sesguard", parser), *commands.items()]
              for action in command._actions
              if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert silent == []


def test_version_from_the_command_line(tmp_path):
    done = sesguard("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"sesguard {__version__}")


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line_saying_what_is_wrong_and_nothing_on_stdout(tmp_path, case):
    args, message = USAGE_ERRORS[case]
    r.write(tmp_path / "trail.json", [r.record(r.iam_user())])
    done = sesguard(*args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sesguard") and message in last, done.stderr
    assert "Traceback" not in done.stderr


def test_sesguard_and_python_m_bot_are_the_same_program(tmp_path):
    r.write(tmp_path / "trail.json", [r.record(r.iam_user("alice")), r.record(r.iam_user("mallory"), time=at(days=9))])
    runs = {"signals": ["scan", "--json", "trail.json"], "unreadable input": ["scan", "trail.json", "missing.json"],
            "usage error": ["scan"], "version": ["--version"]}
    statuses = {}
    for name, args in runs.items():
        by_module, by_script = sesguard(*args, cwd=tmp_path), installed_sesguard(*args, cwd=tmp_path)
        assert (by_script.returncode, by_script.stdout, by_script.stderr) == (
            by_module.returncode, by_module.stdout, by_module.stderr), name
        statuses[name] = by_module.returncode
        if name == "signals":
            assert '"identity":"arn:aws:iam::111122223333:user/mallory"' in by_module.stdout
    assert statuses == {"signals": 0, "unreadable input": 2, "usage error": 2, "version": 0}
