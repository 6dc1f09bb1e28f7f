"""The benchmarks still run and still cross-check: on a small trail, every tool that is run finds the
matching records the generator put in, and /sesguard history gives answers on a small store. (Nothing
here is timed: the figures are the benchmarks' business, run by hand.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.records import REPO

pytestmark = [pytest.mark.processes, pytest.mark.slow]


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESGUARD_", "DATABASE_URL", "AWS_"))}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(REPO)})


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


def test_a_local_scan_without_a_store_imports_no_database_aws_or_slack_library(tmp_path):
    """Start-up is most of a short scan's time: `scan` of local files without --db must not pay for
    SQLAlchemy, boto3 or Slack's SDK (half a second and more)."""
    from tests.support import records as r

    r.write(tmp_path / "trail" / "part.json", r.realistic_trail(), "log", gzipped=True)
    heavy = ("sqlalchemy", "sqlmodel", "alembic", "boto3", "botocore", "slack_bolt", "slack_sdk")
    code = ("import sys; from bot.cli.commands import main; status = main(sys.argv[1:]); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules)); sys.exit(status)")
    done = run("-c", code, "scan", "--json", str(tmp_path / "trail"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert "scanned 52 records in 1 files" in done.stderr


def test_the_investigate_benchmark_clicks_and_times_the_summary(tmp_path):
    done = run(str(REPO / "bench" / "investigate.py"), "--events", "60", "--latency", "0.01", "--runs", "1",
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 LookupEvents requests (Username), 0 throttled, at most 2 in any second" in done.stdout
    assert "from the click to the summary" in done.stdout


def test_the_sql_benchmark_serves_a_trail_through_both_engines_and_the_matches_agree(tmp_path):
    done = run(str(REPO / "bench" / "sql.py"), "--records", "2000", "--share", "0.05", "--days", "40",
               "--window-days", "20", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "athena://cloudtrail.logs: " in done.stdout and "lake://" in done.stdout
    assert "the same matches" in done.stdout


def test_the_stats_benchmark_fills_a_store_and_answers(tmp_path):
    done = run(str(REPO / "bench" / "stats.py"), "--backends", "sqlite", "--signals", "500", "--runs", "1",
               "--sqlite", str(tmp_path / "stats.db"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "500 signals stored" in done.stdout and "stats 365 days" in done.stdout


def test_the_poll_benchmark_passes_over_its_accounts_and_measures_the_floor_beside(tmp_path):
    done = run(str(REPO / "bench" / "poll.py"), "--accounts", "2", "--regions", "2", "--latency", "0",
               "--passes", "1", "--concurrency", "2", "--floor", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| this")]
    # 2 accounts × 2 regions × 2 event sources; the new identity found by the real pass, no detection in the floor
    assert [row.split(" | ")[-5:] for row in rows] == [["8", "4", "0", "2", "yes |"],
                                                      ["8", "0", "0", "2", "n/a (no detection) |"]], rows
