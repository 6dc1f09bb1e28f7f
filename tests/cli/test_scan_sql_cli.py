"""`sesguard scan athena://database.table --since … [--until …]` and `lake://<store>` (SPEC §2, §9), as an operator
runs them, against the Athena and Lake stand-ins over real HTTP: the same signals as a scan of the same records as
files, the engine's figures on stderr, usage errors exit 2, a failed query is one line and exits 1."""

from __future__ import annotations

import json

import pytest

from tests.fakes.sql_engines import Outcome, SqlEngines
from tests.support import records as r
from tests.support import sql_trails as trails

pytestmark = pytest.mark.processes

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
OUTPUT = "s3://athena-results-111122223333/sesguard/"
SINCE, UNTIL = "2025-03-01", "2025-05-01"


@pytest.fixture
def engines():
    stand_in = SqlEngines()
    stand_in.start()
    yield stand_in
    stand_in.stop()


def _env(engines: SqlEngines, **more: str) -> dict:
    return {**AWS_ENV, "AWS_ENDPOINT_URL_ATHENA": engines.endpoint, "AWS_ENDPOINT_URL_CLOUDTRAIL": engines.endpoint,
            "SESGUARD_ATHENA_OUTPUT": OUTPUT, **more}


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _file_scan(tmp_path, trail) -> list[dict]:
    done = r.sesguard("scan", "--json", str(r.write(tmp_path / "trail.json", trail)), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return _lines(done.stdout)


@pytest.mark.parametrize("url", [f"athena://{trails.TABLE}", f"lake://{trails.STORE}"])
def test_an_engine_scan_prints_the_signals_a_file_scan_of_the_same_records_prints(tmp_path, engines, url):
    trail = r.realistic_trail()  # 2025-03-03 onwards, seven weeks
    engines.load_athena(trails.TABLE, trail)
    engines.load_lake(trails.STORE, trail)
    done = r.sesguard("scan", "--json", url, "--since", SINCE, "--until", UNTIL, cwd=tmp_path, env=_env(engines))
    assert done.returncode == 0, done.stderr
    signals = _lines(done.stdout)
    assert signals == _file_scan(tmp_path, trail) and len(signals) == 4
    engine_name = url.split(":")[0]
    lines = done.stderr.strip().splitlines()
    figures, summary = lines[0], lines[-1]
    assert "skipped athena" in done.stderr or "skipped lake" in done.stderr  # the record without an ARN, named
    assert figures.startswith(f"sesguard scan: {url}: {engine_name} query ") and " scanned" in figures
    assert summary.startswith("scanned ") and "4 signals, 1 bad records skipped" in summary


def test_a_bare_athena_url_uses_the_configured_table_and_workgroup(tmp_path, engines):
    engines.load_athena(trails.TABLE, r.realistic_trail())
    engines.workgroups["security"] = OUTPUT
    env = _env(engines, SESGUARD_ATHENA_TABLE=trails.TABLE, SESGUARD_ATHENA_WORKGROUP="security",
               SESGUARD_ATHENA_OUTPUT="")
    done = r.sesguard("scan", "athena://", "--since", SINCE, "--until", UNTIL, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    started, = engines.bodies("StartQueryExecution")
    assert started["WorkGroup"] == "security" and "ResultConfiguration" not in started
    assert 'FROM "cloudtrail"."logs"' in started["QueryString"]


def test_files_and_engines_scan_together(tmp_path, engines):
    trail = r.realistic_trail()
    engines.load_athena(trails.TABLE, trail[::2])
    files = r.write(tmp_path / "rest.json", trail[1::2])
    done = r.sesguard("scan", "--json", str(files), f"athena://{trails.TABLE}", "--since", SINCE, "--until", UNTIL,
                      cwd=tmp_path, env=_env(engines))
    assert done.returncode == 0, done.stderr
    assert _lines(done.stdout) == _file_scan(tmp_path, trail)


@pytest.mark.parametrize("args, words", [
    ([f"athena://{trails.TABLE}"], "need --since"),
    ([f"athena://{trails.TABLE}", "--since", "yesterday"], "--since must be a date or time"),
    ([f"athena://{trails.TABLE}", "--since", "2025-02-01", "--until", "2025-01-01"], "--since must be before --until"),
    (["athena://db.logs'; DROP TABLE x; --", "--since", "2025-01-01"], "not an Athena database.table"),
    (["lake://x' OR '1'='1", "--since", "2025-01-01"], "not a CloudTrail Lake event data store"),
    (["athena://", "--since", "2025-01-01"], "SESGUARD_ATHENA_TABLE is not set"),
])
def test_usage_errors_exit_2_with_one_line_and_send_nothing(tmp_path, engines, args, words):
    done = r.sesguard("scan", *args, cwd=tmp_path, env=_env(engines))
    assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert engines.requests == []


def test_a_failed_query_is_one_line_and_exits_1(tmp_path, engines):
    engines.load_athena(trails.TABLE, r.realistic_trail())
    engines.script.append(Outcome(fail="HIVE_BAD_DATA: Error parsing field value"))
    done = r.sesguard("scan", f"athena://{trails.TABLE}", "--since", SINCE, cwd=tmp_path, env=_env(engines))
    assert done.returncode == 1
    failure = [line for line in done.stderr.splitlines() if "FAILED" in line]
    assert len(failure) == 1 and failure[0].endswith("FAILED: HIVE_BAD_DATA: Error parsing field value")
    assert "scanned 0 records in 1 files" in done.stderr


def test_past_the_bytes_limit_the_scan_fails_clearly(tmp_path, engines):
    engines.load_lake(trails.STORE, r.realistic_trail())
    engines.script.append(Outcome(running_looks=2, bytes_scanned=3 * 1024 ** 3))
    done = r.sesguard("scan", f"lake://{trails.STORE}", "--since", SINCE, cwd=tmp_path,
                      env=_env(engines, SESGUARD_SQL_MAX_GB="1"))
    assert done.returncode == 1
    assert "stopped: it scanned 2.00 GB, more than SESGUARD_SQL_MAX_GB=1" in done.stderr
    assert len(engines.bodies("CancelQuery")) == 1


def test_since_on_files_alone_is_a_warning(tmp_path):
    done = r.sesguard("scan", str(r.write(tmp_path / "t.json", r.realistic_trail())), "--since", "2025-04-01",
                      cwd=tmp_path)
    assert done.returncode == 0 and "warning: --since and --until bound athena:// and lake:// queries only" \
        in done.stderr
