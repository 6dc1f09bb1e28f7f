"""Automatic investigations (SPEC §6): the worker investigates a posted alert at or above
SESGUARD_AUTO_INVESTIGATE without a click, through the store, so that a restart neither loses nor repeats
one; follow-on abuse escalates once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.alerts.notifier import post_pending
from bot.config.errors import SettingsError
from bot.investigate import runs
from bot.investigate.reader import SharedReader
from bot.investigate.tables import GATHERED, PENDING, POSTED, Investigation
from bot.worker.scheduler import Worker
from detection.sources.lookup import LookupSource
from detection.store import SignalHistory, SignalRow, utcnow
from tests.fakes.slack_api import FakeSlack
from tests.support import records, waiting
from tests.support.alerts import Alert, alert
from tests.support.attack_story import attack, call
from tests.support.local_aws import OWN_ACCOUNT, worker_settings
from tests.support.slack_harness import store_signals

CHANNEL = "C0ALERTS"
ESCALATED = "critical: follow-on abuse"
# A worker process started by the test: as patient as the scheduler's own tests.
PATIENCE = 90


@pytest.fixture
def slack():
    with FakeSlack(channels={CHANNEL: ()}) as fake:
        yield fake


def settings_for(slack, store, **values):
    return worker_settings(database_url=store.url, slack_bot_token=slack.token, slack_alert_channel=CHANNEL,
                           slack_api_url=slack.api_url, lease_seconds=2, **values)


def posted_alert(aws, slack, store, settings, story=None, enumeration=None) -> Alert:
    story = story or attack()
    aws.api.add_events(*story.everything)
    [signal_id] = store_signals(store, *(enumeration or story.enumeration))
    assert post_pending(store, settings, interval=0).posted == 1
    return alert(store, signal_id)


def row(store, signal_id) -> SignalRow:
    with store.session() as session:
        return session.get(SignalRow, signal_id)


def investigations(store) -> list[Investigation]:
    with store.session() as session:
        return list(session.exec(select(Investigation).order_by(Investigation.id)))


def escalations(store, signal_id) -> int:
    with store.session() as session:
        return len(session.exec(select(SignalHistory).where(SignalHistory.signal_id == signal_id,
                                                             SignalHistory.action == ESCALATED)).all())


def worker(settings, store) -> Worker:
    return Worker(settings, store, LookupSource(settings.aws_regions, [], store))


def test_a_high_alert_is_investigated_without_a_click_and_escalates_once(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    job = worker(settings, sqlite_store)

    job.investigate_alerts()
    job.investigate_alerts()  # a second pass finds nothing to do

    [done] = investigations(sqlite_store)
    assert (done.requested_by, done.state, done.escalated, done.error) == ("sesguard", POSTED, True, None)
    line, summary = slack.replies(CHANNEL, alert.slack_ts)
    assert line.text.startswith("<!channel> :rotating_light:") and "automatic, for a *HIGH* alert" in json.dumps(
        summary.blocks)
    assert row(sqlite_store, alert.signal_id).severity == "critical" and escalations(sqlite_store, alert.signal_id) == 1
    assert len(slack.calls_to("chat.update")) == 1
    # the investigation read through the poll's own LookupEvents source
    assert job.investigation_reader().source is job.source


@pytest.mark.parametrize("threshold, investigated", [
    ("high", {"high"}), ("medium", {"high", "medium"}), ("low", {"high", "medium", "low"}), ("off", set()),
])
def test_the_threshold_decides_which_alerts_are_investigated(aws, slack, sqlite_store, threshold, investigated):
    settings = settings_for(slack, sqlite_store, auto_investigate=threshold)
    now = attack().now
    alerts = {
        "high": [call(records.iam_user("hana", account=OWN_ACCOUNT), "GetSendQuota", now, 10)],
        "medium": [call(records.ec2_role(account=OWN_ACCOUNT), "GetSendQuota", now, 10)],
        "low": [records.console_record(records.sso_session("lee@example.com", account=OWN_ACCOUNT), "GetAccount",
                                       time=(now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"))],
    }
    severity_of = {}
    for severity, enumeration in alerts.items():
        [signal_id] = store_signals(sqlite_store, *enumeration)
        severity_of[signal_id] = severity
        assert row(sqlite_store, signal_id).severity == severity
    post_pending(sqlite_store, settings, interval=0)

    assert runs.enqueue_automatic(sqlite_store, settings) == len(investigated)
    assert {severity_of[i.signal_id] for i in investigations(sqlite_store)} == investigated


def test_alerts_stored_long_before_are_not_investigated_when_the_feature_is_turned_on(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    with sqlite_store.session() as session:
        session.execute(sa.update(SignalRow).values(created_at=utcnow() - timedelta(days=2)))
        session.commit()
    assert runs.enqueue_automatic(sqlite_store, settings) == 0 and investigations(sqlite_store) == []
    assert slack.replies(CHANNEL, alert.slack_ts) == []


def test_a_clicked_alert_is_not_investigated_again_automatically(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    assert runs.request(sqlite_store, alert.signal_id, "UTRIAGER1", settings.investigate_hours).new
    assert runs.enqueue_automatic(sqlite_store, settings) == 0
    assert [i.requested_by for i in investigations(sqlite_store)] == ["UTRIAGER1"]


def test_an_investigation_a_dead_process_left_is_finished_once(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    [requested] = [runs.request(sqlite_store, alert.signal_id, "UTRIAGER1", settings.investigate_hours)]
    with sqlite_store.session() as session:  # a web process claimed the click's investigation, then died
        session.execute(sa.update(Investigation).values(claimed_by="dead-process", attempts=1,
                                                        claimed_until=utcnow() + timedelta(seconds=1)))
        session.commit()
    job = worker(settings, sqlite_store)
    job.investigate_alerts()
    assert investigations(sqlite_store)[0].state == PENDING  # its claim has not lapsed yet

    waiting.wait_for(lambda: runs.waiting(sqlite_store), "the dead process's claim to lapse", patience=PATIENCE)
    job.investigate_alerts()
    job.investigate_alerts()

    [done] = investigations(sqlite_store)
    assert done.id == requested.investigation.id and done.state == POSTED and done.attempts == 2
    assert len(slack.replies(CHANNEL, alert.slack_ts)) == 2 and escalations(sqlite_store, alert.signal_id) == 1


def test_a_summary_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    slack.fail("chat.postMessage", "lost_answer", times=2)  # both posts go through; both answers are lost
    job = worker(settings, sqlite_store)

    job.investigate_alerts()
    assert investigations(sqlite_store)[0].state == GATHERED  # stored; waiting to be recorded as posted
    job.investigate_alerts()
    job.investigate_alerts()

    [done] = investigations(sqlite_store)
    assert done.state == POSTED and done.escalation_ts and done.summary_ts
    replies = slack.replies(CHANNEL, alert.slack_ts)
    assert [m.metadata["event_payload"]["part"] for m in replies] == ["escalation", "summary"]
    assert {done.escalation_ts, done.summary_ts} == {m.ts for m in replies}
    assert escalations(sqlite_store, alert.signal_id) == 1
    assert len(aws.api.lookups()) == 1  # the read was stored: a retry posts, it does not read again


def test_slack_away_leaves_the_summary_stored_and_a_later_pass_posts_it(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    slack.fail("chat.postMessage", "server_error", times=6)
    job = worker(settings, sqlite_store)
    for _ in range(6):  # more passes than an unexpected failure is given
        job.investigate_alerts()
    assert investigations(sqlite_store)[0].state == GATHERED
    job.investigate_alerts()
    assert investigations(sqlite_store)[0].state == POSTED and len(slack.replies(CHANNEL, alert.slack_ts)) == 2


def test_the_scheduler_runs_the_automatic_investigations(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store, poll_seconds=0.5)
    alert = posted_alert(aws, slack, sqlite_store, settings)
    job = worker(settings, sqlite_store)
    thread = threading.Thread(target=job.run)
    thread.start()
    try:
        waiting.wait_for(lambda: len(slack.replies(CHANNEL, alert.slack_ts)) == 2, "the automatic investigation",
                         patience=PATIENCE)
    finally:
        job.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert row(sqlite_store, alert.signal_id).severity == "critical"


def test_a_stopping_worker_leaves_the_investigation_pending(aws, slack, sqlite_store):
    settings = settings_for(slack, sqlite_store)
    posted_alert(aws, slack, sqlite_store, settings)
    runs.enqueue_automatic(sqlite_store, settings)
    [waiting] = runs.waiting(sqlite_store)
    reader = SharedReader(settings, sqlite_store)
    assert runs.carry_out(sqlite_store, settings, None, reader, waiting, stop=lambda: True) is None
    [left] = investigations(sqlite_store)
    assert (left.state, left.claimed_by) == (PENDING, None) and aws.api.lookups() == []


@pytest.mark.parametrize("name, value", [("SESGUARD_AUTO_INVESTIGATE", "critical"),
                                         ("SESGUARD_AUTO_INVESTIGATE", "sometimes"),
                                         ("SESGUARD_INVESTIGATE_HOURS", "0"), ("SESGUARD_INVESTIGATE_HOURS", "2161"),
                                         ("SESGUARD_INVESTIGATE_MAX_PAGES", "0")])
def test_bad_investigation_settings_stop_start_up_naming_them(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        worker_settings()


def test_the_investigation_settings_and_their_defaults(monkeypatch):
    defaults = worker_settings()
    assert (defaults.investigate_hours, defaults.auto_investigate, defaults.investigate_max_pages) == (24, "high", 50)
    monkeypatch.setenv("SESGUARD_AUTO_INVESTIGATE", " Medium ")
    monkeypatch.setenv("SESGUARD_INVESTIGATE_HOURS", "0.5")
    assert (worker_settings().auto_investigate, worker_settings().investigate_hours) == ("medium", 0.5)


def test_the_escalation_pages_once_through_the_pager(aws, slack, sqlite_store):
    from bot.page.pager import Backoff, page_pending
    from tests.fakes.pagerduty_api import FakePagerDuty

    with FakePagerDuty() as pagerduty:
        settings = settings_for(slack, sqlite_store, pagerduty_routing_key="R0UT1NGKEY0F32CHARACTERSEXACTLY0",
                                pagerduty_events_url=pagerduty.url)
        alert = posted_alert(aws, slack, sqlite_store, settings)
        job = worker(settings, sqlite_store)
        job.investigate_alerts()
        runs.request(sqlite_store, alert.signal_id, "UTRIAGER1", 1)  # a second look at a shorter window
        job.investigate_alerts()
        quick = Backoff(base=0.05, cap=0.2, throttled_minimum=0.05)
        assert page_pending(sqlite_store, settings, backoff=quick).accepted == 1
        assert page_pending(sqlite_store, settings, backoff=quick).accepted == 0
        [event] = pagerduty.accepted()
    assert len(investigations(sqlite_store)) == 2 and escalations(sqlite_store, alert.signal_id) == 1
    assert event["dedup_key"] == alert.signal_id and event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"].startswith("Follow-on abuse after the enumeration: ")
