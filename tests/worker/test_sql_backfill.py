"""The first start's history from a SQL engine (SESGUARD_BACKFILL_SOURCE=athena://…, SPEC §3, §7, §9): one query for
every account and region, learned silently, so that alerting starts at once; the worker's first poll of each place
then starts where the query ended. Athena stand-in and CloudTrail stand-in over real HTTP, a real store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.worker.ingest.poll import poll_once
from bot.worker.tables import EngineBackfill
from detection.baseline import Tuning
from detection.scan import detect
from detection.sources.lookup import Backoff, LookupSource, lookup_pacer
from detection.sources.sql.backfill import backfill
from detection.sources.sql.engine import EngineSettings
from detection.sources.sql.running import Limits
from detection.store import Scope, SignalRow
from tests.fakes.sql_engines import Outcome, SqlEngines
from tests.support import records as r
from tests.support import sql_trails as trails
from tests.support.local_aws import OWN_ACCOUNT, now, ses_calls, user, worker_settings

OUTPUT = "s3://athena-results/sesguard/"
URL = f"athena://{trails.TABLE}"
FAST = Limits(first_wait=0.001, longest_wait=0.001)
OTHER = "444455556666"


@pytest.fixture
def engines(monkeypatch):
    stand_in = SqlEngines()
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", stand_in.start())
    yield stand_in
    stand_in.stop()


def _history() -> list[dict]:
    """A year of alice's and a CI role's quota checks in two accounts, Trusted Advisor's noise, and one record
    that names nobody."""
    history = []
    for day in range(5, 365, 9):
        history += ses_calls(user("alice"), 1, days_ago=day)
        history += ses_calls(r.assumed_role("ci", f"run-{day}", OTHER), 1, account=OTHER, days_ago=day,
                             region="eu-west-1")
        history += ses_calls(r.trusted_advisor(f"TrustedAdvisor_{day}", OWN_ACCOUNT), 1, days_ago=day)
    history += ses_calls({"type": "IAMUser", "accountId": OWN_ACCOUNT}, 1, days_ago=3)
    return history


def _signals(store) -> list[SignalRow]:
    with store.session() as session:
        return list(session.exec(select(SignalRow)))


def test_a_backfill_learns_every_account_in_one_query_and_alerting_starts_at_once(engines, store, aws):
    engines.load_athena(trails.TABLE, _history())
    until = now()
    since = until - timedelta(days=400)
    result = backfill(URL, store, Tuning(), since, until, EngineSettings("primary", OUTPUT, FAST),
                      accounts=["999988887777"])
    assert result.ok, result.line()
    assert result.accounts == sorted([OWN_ACCOUNT, OTHER, "999988887777"]) and result.bad == 1
    assert result.calls == 2 * 40 and _signals(store) == []
    assert len(engines.bodies("StartQueryExecution")) == 1
    with store.session() as session:
        observed = {row.account_id: row.observed_since for row in session.exec(select(Scope))}
    assert observed == {account: since for account in result.accounts}
    # the next calls: alice and the CI role are known; mallory is new, and the accounts learn no longer
    later = [r.record(user("alice"), time=r.at(), account=OWN_ACCOUNT),
             r.record(r.assumed_role("ci", "run-new", OTHER), account=OTHER, region="eu-west-1"),
             r.record(user("mallory"), "ListIdentities", account=OWN_ACCOUNT)]
    for rec in later:
        rec["eventTime"] = (until + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    from detection.sources.files import scan_bytes

    calls = scan_bytes("later.jsonl", r.encode(later, "lines")).calls
    signals, _ = detect(calls, Tuning(), store)
    assert [s.identity for s in signals] == [f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"]
    assert "backfill from athena://cloudtrail.logs" in result.line() and "80 matching calls" in result.line()


def test_a_failed_backfill_stores_nothing_and_says_why(engines, store, aws):
    engines.load_athena(trails.TABLE, _history())
    engines.script.append(Outcome(fail="Access denied when writing to location: s3://athena-results/"))
    result = backfill(URL, store, Tuning(), now() - timedelta(days=30), now(), EngineSettings("primary", OUTPUT, FAST))
    assert not result.ok and result.line().startswith("backfill from athena://cloudtrail.logs: FAILED: athena query ")
    with store.session() as session:
        assert list(session.exec(select(Scope))) == []


def _settings(store, **more):
    values = {"database_url": store.url, "backfill_source": URL, "backfill_days": 365, "learning_days": 7,
              "aws_regions": ["us-east-1", "eu-west-1"], "athena_output": OUTPUT, "lookback_minutes": 20}
    values.update(more)
    return worker_settings(**values)


def _source(settings, store):
    return LookupSource(settings.aws_regions, settings.role_arns, store, backoff=Backoff(base=0.01, cap=0.05),
                        pacer=lookup_pacer(store, limit=20))


def test_the_workers_first_start_backfills_from_the_engine_and_then_polls_from_the_querys_end(engines, store, aws):
    aws.api.limit = 20
    engines.load_athena(trails.TABLE, _history())
    # LookupEvents holds the last minutes: alice again (known from the engine's year) and mallory (new).
    aws.api.add_events(*ses_calls(user("alice"), 1, minutes_ago=1), *ses_calls(user("mallory"), 2, minutes_ago=1))
    settings = _settings(store)
    result = poll_once(settings, store, _source(settings, store), notify=False)
    assert result.ok, result.lines()
    assert [o.backfill for o in result.places] == [False, False]  # the engine's history was the backfill
    with store.session() as session:
        done = session.get(EngineBackfill, URL)
    assert done is not None and done.calls == 80 and done.bytes_scanned > 0  # both accounts, in one query
    # each place's first LookupEvents request starts from the query's end (minus the look-back), not 90 days back
    starts = [call.params.get("StartTime") for call in aws.api.requests if call.action == "LookupEvents"]
    assert starts and all(float(start) >= (done.until - timedelta(minutes=21)).timestamp() for start in starts)
    assert [s.identity for s in _signals(store)] == [f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"]
    # the next pass runs no second query
    assert poll_once(settings, store, _source(settings, store), notify=False).ok
    assert len(engines.bodies("StartQueryExecution")) == 1


def test_until_the_engines_backfill_succeeds_no_place_is_polled_and_the_pass_fails(engines, store, aws):
    aws.api.limit = 20
    engines.load_athena(trails.TABLE, _history())
    engines.script.append(Outcome(fail="HIVE_CURSOR_ERROR"))
    settings = _settings(store)
    result = poll_once(settings, store, _source(settings, store), notify=False)
    assert not result.ok
    assert "FAILED: athena query" in result.source_error and "HIVE_CURSOR_ERROR" in result.source_error
    assert all(o.skipped and "waiting for the backfill" in o.skipped for o in result.places)
    assert [call for call in aws.api.requests if call.action == "LookupEvents"] == []
    # the next pass tries again, and goes on once it succeeds
    second = poll_once(settings, store, _source(settings, store), notify=False)
    assert second.ok, second.lines()
    assert len(engines.bodies("StartQueryExecution")) == 2
