"""The progress bar of `sesguard scan`: drawn on stderr when stderr is a terminal (a real pseudo-terminal
here), erased before the summary line; never with --json, never into a pipe; stdout never carries it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bot.cli.progress import ScanProgress, line
from detection.scan import ScanSummary
from tests.support import records as r

pytestmark = pytest.mark.processes

ERASE = "\r\x1b[K"


def trail_folder(tmp_path: Path) -> Path:
    trail = r.realistic_trail()
    for index in range(6):
        r.write(tmp_path / "trail" / f"part-{index}.json", trail[index::6], "log", gzipped=index % 2 == 0)
    return tmp_path / "trail"


def run_with_terminal_stderr(*args: str, cwd: Path) -> tuple[str, str]:
    """`python -m bot ARGS` with stderr on a pseudo-terminal and stdout on a pipe: (stdout, stderr)."""
    control, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESGUARD_", "DATABASE_URL", "AWS_"))}
    process = subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=terminal, env={**env, "PYTHONPATH": str(r.REPO), "COLUMNS": "100"})
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(control, 65536)
        except OSError:  # the terminal's other end closed: the process is done with it
            break
        if not chunk:
            break
        seen += chunk
    os.close(control)
    stdout = process.stdout.read().decode()
    process.stdout.close()
    assert process.wait(timeout=120) == 0, seen
    return stdout, seen.decode().replace("\r\n", "\n")


def test_a_terminal_gets_the_bar_which_is_erased_before_the_summary(tmp_path):
    stdout, stderr = run_with_terminal_stderr("scan", "--jobs", "2", str(trail_folder(tmp_path)), cwd=tmp_path)
    frames, _, after = stderr.rpartition(ERASE)
    assert "files" in frames and "records/s" in frames and frames.startswith("\r")
    assert "\x1b" not in after and "\r" not in after  # the problems and the summary, on clean lines
    assert after.splitlines()[-1].startswith("scanned ") and after.startswith("sesguard: skipped ")
    assert stdout.startswith("FIRST SEEN") and "\x1b" not in stdout and "records/s" not in stdout


def test_json_output_never_gets_a_bar_even_on_a_terminal(tmp_path):
    stdout, stderr = run_with_terminal_stderr("scan", "--json", str(trail_folder(tmp_path)), cwd=tmp_path)
    assert "records/s" not in stderr and "\x1b" not in stderr
    assert stderr.startswith("sesguard: skipped") or stderr.startswith("scanned ")
    assert [orjson.loads(row)["signal_id"] for row in stdout.splitlines()]


def test_a_pipe_never_gets_a_bar(tmp_path):
    done = r.sesguard("scan", str(trail_folder(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0 and "records/s" not in done.stderr and "\x1b" not in done.stderr


def summary(files: int, records: int) -> ScanSummary:
    return ScanSummary(records=records, files=files)


def test_the_line_shows_a_bar_once_the_file_count_is_known_and_fits_the_terminal():
    assert line(summary(3, 3000), None, 2.0) == "scanning  3 files  3,000 records  1,500 records/s  0:02"
    full = line(summary(50, 50_000), 200, 65.0)
    assert full == "[######..................] 50/200 files  50,000 records  769 records/s  1:05"
    narrow = line(summary(50, 50_000), 200, 65.0, width=60)
    assert len(narrow) <= 60 and narrow.endswith("50/200 files  50,000 records  769 records/s  1:05")
    assert line(summary(50, 50_000), 200, 65.0, width=40) == "50/200 files  50,000 records  769 records/s  1:05"


class Screen:
    def __init__(self):
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_redraws_are_throttled_and_the_file_count_arrives_in_the_background():
    now = [100.0]
    screen = Screen()
    progress = ScanProgress(screen, count_files=lambda: 10, clock=lambda: now[0])
    progress(summary(1, 1000))
    first = screen.text
    now[0] += 0.05
    progress(summary(2, 2000))
    assert screen.text == first  # too soon to redraw
    deadline = time.monotonic() + 10
    while progress.total_files is None and time.monotonic() < deadline:  # counted in a thread since file 1
        time.sleep(0.01)
    assert progress.total_files == 10
    now[0] += 0.2
    progress(summary(5, 5000))
    assert screen.text.endswith("5/10 files  5,000 records  20,000 records/s  0:00\x1b[K")
    progress.close()
    assert screen.text.endswith(ERASE)
