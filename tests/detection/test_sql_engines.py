"""The engines' protocols (SPEC §9) over real HTTP: Athena and CloudTrail Lake stand-ins whose queries run in DuckDB
(tests/fakes/sql_engines.py), in the protocol botocore's models name. What crossed the wire is asserted: the SQL text
holds no value, the parameters fill its `?`, pages are followed, limits stop the query, failures are one line."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
import requests

from detection.sources.sql import athena, engine, lake, query
from detection.sources.sql.rows import Figures
from detection.sources.sql.running import GB, Limits, QueryFailed
from tests.fakes.sql_engines import Outcome, SqlEngines
from tests.support import sql_trails as trails

SINCE, UNTIL = trails.T0, trails.T0 + timedelta(days=30)
FAST = Limits(first_wait=0.001, longest_wait=0.001)
OUTPUT = "s3://athena-results-111122223333/sesguard/"


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return monkeypatch


@pytest.fixture
def engines(aws_credentials):
    stand_in = SqlEngines()
    endpoint = stand_in.start()
    aws_credentials.setenv("AWS_ENDPOINT_URL_ATHENA", endpoint)
    aws_credentials.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", endpoint)
    yield stand_in
    stand_in.stop()


@pytest.fixture
def trail():
    return trails.generated_trail(7, 2500, days=30)


def _settings(**limits) -> engine.EngineSettings:
    return engine.EngineSettings("primary", OUTPUT, Limits(first_wait=0.001, longest_wait=0.001, **limits))


# ── Athena ───────────────────────────────────────────────────────────────────────────────────────────


def test_athena_scan_gives_the_files_calls_with_every_value_a_parameter(engines, trail):
    records, late = trail
    engines.load_athena(trails.TABLE, records, late)
    engines.script.append(Outcome(running_looks=3))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, _settings())
    calls, excluded = trails.python_rule(records, SINCE, UNTIL)
    assert scanned.error is None
    assert set(scanned.calls) == calls and {s.account_id for s in scanned.sightings} == excluded
    started, = engines.bodies("StartQueryExecution")
    expected = query.athena_rule_query(trails.TABLE, SINCE, UNTIL)
    assert started["QueryString"] == expected.text and started["ExecutionParameters"] == expected.parameters
    assert started["WorkGroup"] == "primary" and started["ResultConfiguration"] == {"OutputLocation": OUTPUT}
    for hostile in trails.HOSTILE:  # the trail's hostile ARNs are data: they never travel towards the engine
        assert hostile not in started["QueryString"] and all(hostile not in p for p in started["ExecutionParameters"])
    looks = engines.bodies("GetQueryExecution")
    assert len(looks) == 5  # QUEUED, RUNNING three times, SUCCEEDED
    pages = engines.bodies("GetQueryResults")
    figures = scanned.figures
    assert figures.rows == len(scanned.calls) + len(scanned.bad) + scanned.not_matching + _summary_rows(scanned)
    assert figures.pages == len(pages)
    assert all(page["MaxResults"] == 1000 for page in pages)
    assert figures.bytes_scanned > 0 and figures.engine_millis is not None
    assert "athena query" in figures.line(scanned.name) and "scanned" in figures.line(scanned.name)


def _summary_rows(scanned) -> int:
    """Rows that stood for excluded callers: one Sighting each (row by row ones carry their eventID)."""
    return sum(1 for s in scanned.sightings if s.event_id.startswith("sql-excluded-callers-")) + \
        sum(1 for s in scanned.sightings if not s.event_id.startswith("sql-excluded-callers-"))


def test_athena_results_are_followed_page_by_page(engines, trail):
    records, late = trail
    engines.load_athena(trails.TABLE, records, late)
    settings = engine.EngineSettings("primary", OUTPUT, Limits(first_wait=0.001, longest_wait=0.001, page_size=50))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, settings)
    pages = engines.bodies("GetQueryResults")
    assert scanned.figures.rows > 100 and scanned.figures.pages == len(pages) == -(-(scanned.figures.rows + 1) // 50)
    assert "NextToken" not in pages[0] and all("NextToken" in page for page in pages[1:])
    assert set(scanned.calls) == trails.python_rule(records, SINCE, UNTIL)[0]


def test_the_partition_prunes_what_athena_scans(engines, trail):
    records, late = trail
    engines.load_athena(trails.TABLE, records, late)
    week = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, SINCE + timedelta(days=7), _settings())
    month = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, _settings())
    assert 0 < week.figures.bytes_scanned < month.figures.bytes_scanned / 2


def test_athena_past_the_bytes_limit_is_stopped_with_one_clear_line(engines, trail):
    records, late = trail
    engines.load_athena(trails.TABLE, records, late)
    engines.script.append(Outcome(running_looks=4, bytes_scanned=int(80 * GB)))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, _settings(max_gb=50))
    assert scanned.calls == [] and "\n" not in scanned.error
    assert "stopped: it scanned" in scanned.error and "more than SESGUARD_SQL_MAX_GB=50" in scanned.error
    query_id = scanned.figures.query_id
    assert engines.bodies("StopQueryExecution") == [{"QueryExecutionId": query_id}]
    assert engines.executions[query_id].state == "CANCELLED"
    assert engines.bodies("GetQueryResults") == []


def test_an_athena_query_that_fails_is_one_line_with_athenas_reason(engines, trail):
    engines.load_athena(trails.TABLE, trail[0])
    engines.script.append(Outcome(fail="HIVE_CANNOT_OPEN_SPLIT: Error opening Hive split s3://logs/x.json.gz"))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, _settings())
    assert scanned.error == (f"athena query {scanned.figures.query_id} FAILED: HIVE_CANNOT_OPEN_SPLIT: Error "
                             f"opening Hive split s3://logs/x.json.gz")


def test_an_athena_query_cancelled_elsewhere_is_one_line(engines, trail):
    engines.load_athena(trails.TABLE, trail[0])
    engines.script.append(Outcome(running_looks=2, cancelled=True))
    found = athena.run(query.athena_rule_query(trails.TABLE, SINCE, UNTIL), "primary", OUTPUT, FAST, Figures("athena"))
    with pytest.raises(QueryFailed, match=r"^athena query \S+ CANCELLED: Query cancelled by user$"):
        list(found)


def test_an_athena_query_past_its_deadline_is_stopped(engines, trail):
    engines.load_athena(trails.TABLE, trail[0])
    engines.script.append(Outcome(running_looks=10_000))
    limits = Limits(first_wait=0.001, longest_wait=0.001, deadline_seconds=0.0)
    with pytest.raises(QueryFailed, match="stopped: still (QUEUED|RUNNING) after 0 s"):
        list(athena.run(query.athena_rule_query(trails.TABLE, SINCE, UNTIL), "primary", OUTPUT, limits,
                        Figures("athena")))
    assert len(engines.bodies("StopQueryExecution")) == 1


def test_athena_refusing_the_request_is_one_line(engines, trail):
    engines.load_athena(trails.TABLE, trail[0])
    settings = engine.EngineSettings("primary", None, FAST)  # no output location anywhere
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, settings)
    assert scanned.error.startswith("athena StartQueryExecution failed: InvalidRequestException: No output location")
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL,
                               engine.EngineSettings("nope", OUTPUT, FAST))
    assert "WorkGroup nope is not found" in scanned.error


def test_a_missing_table_fails_the_query_in_one_line(engines):
    scanned = engine.rule_scan(engine.parse("athena://cloudtrail.missing"), SINCE, UNTIL, _settings())
    assert scanned.error.startswith("athena query ") and " FAILED: SYNTAX_ERROR" in scanned.error


# ── CloudTrail Lake ──────────────────────────────────────────────────────────────────────────────────


def test_lake_scan_gives_the_files_calls_with_checked_literals(engines, trail):
    records, _ = trail
    engines.load_lake(trails.STORE, records)
    engines.script.append(Outcome(running_looks=2))
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), SINCE, UNTIL,
                               engine.EngineSettings(limits=Limits(first_wait=0.001, longest_wait=0.001, page_size=40)))
    calls, excluded = trails.python_rule(records, SINCE, UNTIL)
    assert scanned.error is None
    assert set(scanned.calls) == calls and {s.account_id for s in scanned.sightings} == excluded
    started, = engines.bodies("StartQuery")
    assert started == {"QueryStatement": query.lake_rule_query(trails.STORE, SINCE, UNTIL).text}
    assert len(engines.bodies("DescribeQuery")) == 4
    pages = engines.bodies("GetQueryResults")
    assert scanned.figures.pages == len(pages) > 1 and all(page["MaxQueryResults"] == 40 for page in pages)
    assert scanned.figures.events_scanned == len(records) - sum(1 for rec in records if not _valid_time(rec))
    assert "lake query" in scanned.figures.line(scanned.name)


def _valid_time(record: dict) -> bool:
    from detection.record import BadRecord, parse_time

    try:
        parse_time(record["eventTime"])
        return True
    except BadRecord:
        return False


def test_lake_by_arn_names_the_store_by_its_id(engines, trail):
    engines.load_lake(trails.STORE, trail[0])
    url = f"lake://arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/{trails.STORE}"
    scanned = engine.rule_scan(engine.parse(url), SINCE, UNTIL, _settings())
    assert scanned.error is None and f"FROM {trails.STORE} WHERE" in engines.bodies("StartQuery")[0]["QueryStatement"]


@pytest.mark.parametrize("outcome, line", [
    (Outcome(fail="Query failed: internal error"), "FAILED: Query failed: internal error"),
    (Outcome(timed_out=True), "TIMED_OUT: Query timed out"),
])
def test_a_lake_query_that_ends_badly_is_one_line(engines, trail, outcome, line):
    engines.load_lake(trails.STORE, trail[0])
    engines.script.append(outcome)
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), SINCE, UNTIL, _settings())
    assert scanned.error == f"lake query {scanned.figures.query_id} {line}"


def test_lake_past_the_bytes_limit_is_cancelled(engines, trail):
    engines.load_lake(trails.STORE, trail[0])
    engines.script.append(Outcome(running_looks=3, bytes_scanned=int(2 * GB)))
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), SINCE, UNTIL, _settings(max_gb=0.5))
    assert "more than SESGUARD_SQL_MAX_GB=0.5" in scanned.error
    assert engines.bodies("CancelQuery") == [{"QueryId": scanned.figures.query_id}]
    assert engines.bodies("GetQueryResults") == []


def test_an_unknown_event_data_store_is_one_line(engines):
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), SINCE, UNTIL, _settings())
    assert scanned.error == ("lake StartQuery failed: EventDataStoreNotFoundException: The specified event data "
                             "store was not found.")


def test_an_empty_time_range_runs_no_query(engines):
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), UNTIL, SINCE, _settings())
    assert "the time range is empty" in scanned.error and engines.requests == []


def test_a_stopping_process_stops_the_query(engines, trail):
    engines.load_lake(trails.STORE, trail[0])
    engines.script.append(Outcome(running_looks=10_000))
    limits = Limits(first_wait=0.001, longest_wait=0.001)
    limits.stop.set()
    with pytest.raises(QueryFailed, match="the process is stopping"):
        list(lake.run(query.lake_rule_query(trails.STORE, SINCE, UNTIL), limits, Figures("lake")))
    assert len(engines.bodies("CancelQuery")) == 1


def test_requests_are_signed_for_their_service(engines):
    answer = requests.post(engines.endpoint, data=b"{}", timeout=10,
                           headers={"X-Amz-Target": "AmazonAthena.StartQueryExecution"})
    assert answer.status_code == 403


def test_times_are_utc_whatever_zone_they_come_in(engines, trail):
    records, late = trail
    engines.load_athena(trails.TABLE, records, late)
    berlin = timezone(timedelta(hours=1))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE.astimezone(berlin),
                               UNTIL.astimezone(berlin), _settings())
    assert set(scanned.calls) == trails.python_rule(records, SINCE, UNTIL)[0]
