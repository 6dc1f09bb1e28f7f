"""The benchmarks still run and still cross-check: on a small trail, every tool that is run finds the
matching records the generator put in, and /sesguard history gives answers on a small store. (Nothing
here is timed: the figures are the benchmarks' business, run by hand.)"""

from __future__ import annotations

import subprocess
import sys

from tests.records import REPO


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_scan_benchmark_generates_a_trail_and_every_tool_agrees(tmp_path):
    done = run(str(REPO / "bench" / "scan.py"), "--records", "3000", "--ses-share", "0.02", "--runs", "1",
               "--skip", "jq", "duckdb", "--data", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trail: 3,000 records in 3 files" in done.stdout
    assert "all tools found the same matching records as the generator put in" in done.stdout
    assert len(list((tmp_path / "data" / "AWSLogs").rglob("*.json.gz"))) == 3


def test_the_history_benchmark_fills_a_store_and_answers(tmp_path):
    done = run(str(REPO / "bench" / "history.py"), "--backends", "sqlite", "--events", "3000",
               "--identities", "300", "--lookups", "30", "--sqlite", str(tmp_path / "history.db"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3,000 matching events over 300 identities" in done.stdout
    assert "heaviest identity" in done.stdout and "with calls in the last 90 days" in done.stdout
