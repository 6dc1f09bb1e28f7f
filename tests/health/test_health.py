"""The health report at chosen moments: failing when polling went quiet (also with nobody left to record a
failure), a first backfill under way, a worker that never came, delivery to Slack, and what `/healthz` may say."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import select

from bot.alerts.delivery import record_pass
from bot.health.report import health
from bot.store.lease import Lease, poll_lease_name
from bot.store.schema import migration_config
from bot.worker.tables import PollState
from detection.store import UTCDateTime, utcnow
from tests.support.local_aws import OWN_ACCOUNT, worker_settings
from tests.support.slack_harness import cloudtrail_record, store_signals

CHANNEL = "C0ALERTS"
POLL = timedelta(seconds=300)


@pytest.fixture
def settings(store):
    return worker_settings(database_url=store.url, poll_seconds=POLL.total_seconds(), slack_alert_channel=CHANNEL,
                           slack_bot_token="xoxb-test")


def place(store, **values) -> PollState:
    row = PollState(source="lookup", account_id=OWN_ACCOUNT, region="us-east-1", **values)
    with store.session() as session:
        session.add(row)
        session.commit()
    return row


def test_a_source_nobody_ever_polled_turns_red_three_intervals_after_the_first_look(store, settings):
    first_look = utcnow()
    report = health(store, settings, first_look)
    assert report.ok and report.as_dict()["sources"] == 1
    assert "no poll has run yet, waiting since" in report.lines()[0]
    assert health(store, settings, first_look + 3 * POLL).ok  # not before it could have polled three times
    late = health(store, settings, first_look + 3 * POLL + timedelta(seconds=1))
    assert not late.ok and late.as_dict()["failing_sources"] == 1
    assert late.lines()[0].startswith("FAILING lookup") and first_look.strftime("%Y-%m-%d %H:%M:%S") in late.lines()[0]


def test_a_place_whose_last_success_is_three_intervals_old_is_failing_without_any_recorded_failure(store, settings):
    polled = utcnow()
    place(store, watermark=polled, last_success_at=polled, waiting_since=polled - timedelta(days=1))
    assert health(store, settings, polled + 3 * POLL).ok
    report = health(store, settings, polled + 3 * POLL + timedelta(seconds=1))
    assert not report.ok and report.sources[0].consecutive_failures == 0
    assert f"no successful poll since {polled:%Y-%m-%d %H:%M:%S}Z" in report.lines()[0]


def test_a_first_backfill_under_way_is_not_failing_while_its_process_holds_the_lease(store, settings):
    started = utcnow()
    place(store, waiting_since=started)
    lease = Lease(store, poll_lease_name("lookup", OWN_ACCOUNT), seconds=3600)
    assert lease.acquire()
    an_hour_on = started + timedelta(hours=1) - timedelta(seconds=1)
    report = health(store, settings, an_hour_on)
    assert report.ok and "first poll (backfill) under way, waiting since" in report.lines()[0]
    # The process died: its lease lapses and the wait of an hour counts against it.
    assert not health(store, settings, started + timedelta(hours=1, seconds=1)).ok


def test_first_polls_that_failed_three_times_are_failing_even_while_a_pass_tries_again(store, settings):
    started = utcnow()
    place(store, waiting_since=started, consecutive_failures=3, last_error="AccessDenied", last_error_at=started)
    assert Lease(store, poll_lease_name("lookup", OWN_ACCOUNT), seconds=3600).acquire()
    assert not health(store, settings, started + timedelta(seconds=1)).ok


def test_retired_places_and_other_sources_are_left_out(store, settings):
    long_ago = utcnow() - timedelta(days=3)
    place(store, last_success_at=long_ago, waiting_since=long_ago, retired_at=long_ago)
    with store.session() as session:
        session.add(PollState(source="s3://old-bucket/trail", account_id=OWN_ACCOUNT, region="us-east-1",
                              last_success_at=long_ago, waiting_since=long_ago))
        session.commit()
    report = health(store, settings)
    assert report.ok and [(s.account_id, s.region) for s in report.sources] == [("*", "*")]


def test_delivery_stopped_by_a_lasting_error_is_failing_at_once(store, settings):
    now = utcnow()
    record_pass(store, CHANNEL, stopped_by="HTTP 200 token_revoked", transient=False, now=now)
    report = health(store, settings, now)
    assert not report.ok and report.delivery_failing and not report.polling_failing
    assert report.problems() == ["delivery to Slack is failing"]
    assert "stopped by an error: HTTP 200 token_revoked" in report.lines()[-1]
    record_pass(store, CHANNEL, stopped_by=None, transient=False, now=now)
    assert not health(store, settings, now).delivery_failing


def test_delivery_is_failing_once_the_oldest_waiting_alert_is_three_intervals_old(store, settings):
    [signal_id] = store_signals(store, cloudtrail_record(user="alice"))
    record_pass(store, CHANNEL, stopped_by="HTTP 503 fatal_error", transient=True)
    now = utcnow()
    report = health(store, settings, now)
    assert not report.delivery_failing and report.as_dict()["pending_alerts"] == 1  # a transient error: not yet
    late = health(store, settings, now + 3 * POLL + timedelta(seconds=1))
    assert late.delivery_failing and late.as_dict()["oldest_pending_seconds"] > 900
    assert "1 alerts waiting to be posted, the oldest since" in late.lines()[-1]


def test_the_public_answer_has_status_and_counts_and_status_has_the_details(store, settings):
    failed = utcnow() - timedelta(hours=1)
    error = f"AccessDenied: User: arn:aws:iam::{OWN_ACCOUNT}:user/sesguard is not authorized"
    place(store, last_success_at=failed, waiting_since=failed, last_error=error, last_error_at=failed)
    record_pass(store, CHANNEL, stopped_by="HTTP 200 token_revoked", transient=False)
    report = health(store, settings)
    public = json.dumps(report.as_dict())
    for secret in (OWN_ACCOUNT, "arn:aws", "sesguard", "AccessDenied", "token_revoked", CHANNEL):
        assert secret not in public, secret
    assert report.as_dict() | {"checked_at": None} == {
        "ok": False, "checked_at": None, "sources": 1, "failing_sources": 1, "pending_alerts": 0,
        "oldest_pending_seconds": None, "alerts_set_aside": 0, "delivery_failing": True}
    details = "\n".join(report.lines())
    assert error in details and "token_revoked" in details and f"{OWN_ACCOUNT}/us-east-1" in details


def _migrate(store, revision: str, down: bool = False) -> None:
    with store.engine.begin() as connection:
        (command.downgrade if down else command.upgrade)(migration_config(connection), revision)


def test_the_migration_awaits_places_polled_before_from_their_last_sign_of_life(store):
    _migrate(store, "0005", down=True)
    polled, failed = utcnow() - timedelta(hours=2), utcnow() - timedelta(hours=1)
    table = sa.table("poll_state", *(sa.column(name) for name in ("source", "account_id", "region",
                                                                  "consecutive_failures")),
                     *(sa.column(name, UTCDateTime()) for name in ("last_success_at", "last_error_at")))
    with store.engine.begin() as connection:
        connection.execute(table.insert(), [
            {"source": "lookup", "account_id": "1", "region": "r", "consecutive_failures": 0,
             "last_success_at": polled, "last_error_at": None},
            {"source": "lookup", "account_id": "2", "region": "r", "consecutive_failures": 2,
             "last_success_at": None, "last_error_at": failed}])
    _migrate(store, "head")
    with store.session() as session:
        rows = {row.account_id: row for row in session.exec(select(PollState))}
    assert (rows["1"].waiting_since, rows["2"].waiting_since) == (polled, failed)
    assert rows["1"].retired_at is None
