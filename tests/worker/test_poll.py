"""Poll passes against the local CloudTrail endpoint: backfill, watermark, look-back, health, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.cli.commands import main
from bot.health.report import health
from bot.store.lease import Lease
from bot.worker.ingest.poll import poll_once
from bot.worker.tables import PollState
from detection.sources.lookup import EVENT_SOURCES, Backoff, LookupSource, lookup_pacer
from detection.store import EventRow, Scope, SignalHistory, SignalRow
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import alert
from tests.support.local_aws import (
    OWN_ACCOUNT,
    ROLE_ACCOUNT,
    ROLE_ARN,
    now,
    ses_calls,
    subprocess_env,
    user,
    worker_settings,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.processes

CHANNEL = "C0ALERTS"
FAST = Backoff(base=0.01, cap=0.05)
# The pace is not the subject here (test_worker_lookup proves it): the passes run in-process with the
# endpoint and the client both allowing 20 requests a second, so that a test of 4 passes takes no 4 s.
# The `sesguard poll` runs keep the real client's pace of 2.
RELAXED_LIMIT = 20


@pytest.fixture(autouse=True)
def relaxed_endpoint(aws):
    aws.api.limit = RELAXED_LIMIT


def settings_for(store, **overrides):
    values = dict(database_url=store.url, backfill_days=30, learning_days=7, lookback_minutes=20,
                  aws_regions=["us-east-1"])
    values.update(overrides)
    return worker_settings(**values)


def passes(settings, store, source=None):
    source = source or LookupSource(settings.aws_regions, settings.role_arns, store, backoff=FAST,
                                    pacer=lookup_pacer(store, limit=RELAXED_LIMIT))
    return lambda: poll_once(settings, store, source, notify=False)


def signals(store) -> list[SignalRow]:
    with store.session() as session:
        return list(session.exec(select(SignalRow).order_by(SignalRow.first_seen)))


def state(store, account=OWN_ACCOUNT, region="us-east-1") -> PollState | None:
    with store.session() as session:
        return session.get(PollState, ("lookup", account, region))


def stored_event_ids(store) -> list[str]:
    with store.session() as session:
        return list(session.exec(select(EventRow.event_id)))


def test_backfill_is_silent_then_each_new_identity_alerts_once(aws, store):
    history = (ses_calls(user("alice"), 40, days_ago=20) + ses_calls(user("alice"), 5, days_ago=2)
               + ses_calls(user("ci"), 30, days_ago=10, region="us-east-1"))
    aws.api.add_events(*history)
    settings = settings_for(store)
    poll = passes(settings, store)

    first = poll()
    assert first.ok and [o.backfill for o in first.places] == [True]
    assert signals(store) == [] and len(stored_event_ids(store)) == len(history)
    with store.session() as session:
        observed = session.get(Scope, OWN_ACCOUNT).observed_since
    assert abs(observed - (now() - timedelta(days=30))) < timedelta(minutes=1)
    after_backfill = state(store)
    assert after_backfill.backfilled_at is not None and after_backfill.consecutive_failures == 0

    burst = ses_calls(user("mallory"), 3, minutes_ago=2) + ses_calls(user("mallory"), 2, minutes_ago=2)
    aws.api.add_events(*burst, *ses_calls(user("alice"), 2, minutes_ago=1), *ses_calls(user("trent"), 1))
    second = poll()
    watermark = state(store).watermark
    third = poll()

    assert second.ok and third.ok and [o.backfill for o in second.places] == [False]
    assert sorted(s.identity for s in signals(store)) == [
        f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory", f"arn:aws:iam::{OWN_ACCOUNT}:user/trent"]
    mallory = next(s for s in signals(store) if s.identity.endswith("mallory"))
    assert mallory.event_count == 5 and alert(store, mallory.signal_id).slack_ts is None  # waiting in the outbox
    with store.session() as session:
        assert len(list(session.exec(select(SignalHistory).where(SignalHistory.action == "detected")))) == 2
    # Later polls read from the watermark minus the look-back, never the whole history again.
    last = aws.api.lookups()[-1].params
    # (botocore sends whole or fractional epoch seconds, depending on its version)
    assert abs(float(last["StartTime"]) - (watermark - timedelta(minutes=20)).timestamp()) < 1
    assert state(store).watermark > watermark
    assert third.places[0].new_calls == 0


def test_a_backfill_shorter_than_the_learning_period_keeps_learning(aws, store):
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=1))
    poll = passes(settings_for(store, backfill_days=2), store)
    poll()
    aws.api.add_events(*ses_calls(user("mallory"), 1))
    poll()
    assert signals(store) == []  # 2 days observed of 7 learning: mallory is learned, not alerted


def test_events_arriving_late_inside_the_look_back_are_detected_once(aws, store):
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=10))
    poll = passes(settings_for(store), store)
    poll()
    poll()
    # Delivered only now, although they happened before the last poll: one inside the look-back,
    # one before the backfill ended (a first fetch by a later poll is detected normally).
    late = ses_calls(user("mallory"), 1, minutes_ago=10) + ses_calls(user("oscar"), 1, minutes_ago=0.05)
    aws.api.add_events(*late)
    poll()
    poll()
    assert sorted(s.identity.rsplit("/", 1)[-1] for s in signals(store)) == ["mallory", "oscar"]
    assert sorted(stored_event_ids(store)).count(late[0]["eventID"]) == 1


def test_a_failing_source_keeps_the_watermark_and_reports_health(aws, store):
    aws.api.add_events(*ses_calls(user("alice"), 2, days_ago=3))
    poll = passes(settings_for(store), store)
    poll()
    watermark = state(store).watermark
    aws.api.inject("error500", times=4, event_source=EVENT_SOURCES[0])  # one event source's request, 3 retries
    failed = poll()
    assert not failed.ok and "InternalFailure" in failed.places[0].error
    failing = state(store)
    assert failing.watermark == watermark and failing.consecutive_failures == 1
    assert "InternalFailure" in failing.last_error and failing.last_error_at is not None
    aws.api.add_events(*ses_calls(user("mallory"), 1, minutes_ago=3))
    recovered = poll()
    assert recovered.ok and state(store).consecutive_failures == 0 and state(store).watermark > watermark
    assert [s.identity.rsplit("/", 1)[-1] for s in signals(store)] == ["mallory"]


def test_an_account_polled_by_another_process_is_left_alone(aws, store):
    settings = settings_for(store)
    other = Lease(store, f"poll:lookup:{OWN_ACCOUNT}", 60)
    assert other.acquire()
    result = passes(settings, store)()
    assert result.ok and result.places[0].skipped and aws.api.lookups() == []
    other.release()
    assert passes(settings, store)().places[0].backfill


def test_a_region_taken_out_of_the_settings_is_retired_and_polled_on_from_its_watermark_when_it_is_back(aws, store):
    both = settings_for(store, aws_regions=["us-east-1", "eu-west-1"])
    assert all(outcome.backfill for outcome in passes(both, store)().places)
    watermark = state(store, region="eu-west-1").watermark
    one = settings_for(store)
    passes(one, store)()
    assert state(store, region="eu-west-1").retired_at is not None and state(store).retired_at is None
    # No longer polled, so not failing: health leaves it out instead of reporting it red for ever.
    assert [s.region for s in health(store, one).sources] == ["us-east-1"]
    back = passes(both, store)()
    assert state(store, region="eu-west-1").retired_at is None
    [outcome] = [o for o in back.places if o.place.region == "eu-west-1"]
    assert not outcome.backfill and outcome.start == watermark - timedelta(minutes=20)  # no silent re-learning


def test_a_place_is_awaited_from_its_first_listing_and_its_backfill_under_way_is_not_failing(aws, store):
    # The first LookupEvents request waits: the pass is under way, nothing stored.
    release = aws.api.inject("hold").release
    before = now()
    settings = settings_for(store, poll_seconds=1, lease_seconds=60)
    running = threading.Thread(target=passes(settings, store))
    running.start()
    try:
        deadline = time.monotonic() + 60
        while aws.api.faults and time.monotonic() < deadline:
            time.sleep(0.01)
        row = state(store)
        assert row is not None and row.last_success_at is None and row.waiting_since >= before
        [backfill] = health(store, settings, now() + timedelta(seconds=10)).sources  # past 3 intervals
        assert backfill.region == "us-east-1" and backfill.first_poll_under_way and not backfill.failing
    finally:
        release.set()
        running.join()


def test_two_accounts_each_backfill_then_alert(aws, store):
    aws.api.add_role(ROLE_ARN)
    aws.api.add_events(*ses_calls(user("alice"), 2, days_ago=9),
                       *ses_calls(user("bob", ROLE_ACCOUNT), 2, days_ago=9, account=ROLE_ACCOUNT, region="eu-west-1"))
    poll = passes(settings_for(store, role_arns=[ROLE_ARN], aws_regions=["us-east-1", "eu-west-1"]), store)
    first = poll()
    assert first.ok and len(first.places) == 4 and all(o.backfill for o in first.places)
    # the same person's identity in the other account is new there
    aws.api.add_events(*ses_calls(user("alice", ROLE_ACCOUNT), 1, account=ROLE_ACCOUNT, region="eu-west-1"),
                       *ses_calls(user("alice"), 1))
    assert poll().ok
    assert [(s.account_id, s.identity) for s in signals(store)] == [
        (ROLE_ACCOUNT, f"arn:aws:iam::{ROLE_ACCOUNT}:user/alice")]


# ── the command ──────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def slack():
    with FakeSlack(channels={CHANNEL: ()}) as fake:
        yield fake


@pytest.fixture
def command_env(aws, slack, sqlite_store, monkeypatch):
    """`sesguard poll --once` as an operator runs it: everything from the environment."""
    env = {"DATABASE_URL": sqlite_store.url, "SLACK_BOT_TOKEN": slack.token, "SLACK_ALERT_CHANNEL": CHANNEL,
           "SLACK_API_URL": slack.api_url, "SESGUARD_BACKFILL_DAYS": "30", "SESGUARD_POLL_SECONDS": "0.2",
           "AWS_REGIONS": "us-east-1", "SESGUARD_LEASE_SECONDS": "1", "SESGUARD_RETRY_SECONDS": "0.01"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield env
    for number, handler in handlers.items():
        signal.signal(number, handler)


def test_poll_once_posts_each_alert_once_and_exits_0(aws, slack, sqlite_store, command_env, capsys):
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    assert main(["poll", "--once"]) == 0
    aws.api.add_events(*ses_calls(user("mallory"), 2))
    assert main(["poll", "--once"]) == 0
    assert main(["poll", "--once"]) == 0
    posted = [m for m in slack.channel_messages(CHANNEL) if not m.text.startswith("Learning ended")]
    assert len(posted) == 1 and "mallory" in str(posted[0].blocks)
    [row] = signals(sqlite_store)
    assert alert(sqlite_store, row.signal_id).slack_ts == posted[0].ts
    assert "backfill (learned silently)" in capsys.readouterr().err


def test_poll_once_is_a_whole_worker_pass_the_learning_report_and_the_digest_included(
        aws, slack, sqlite_store, command_env, monkeypatch, capsys):
    """A cron or CronJob deployment runs only `poll --once`: the learning report was posted only by `sesguard
    worker`. A backfill that covers the learning period ends it at once, and the same pass reports it."""
    monkeypatch.setenv("SESGUARD_DIGEST_HOUR", "0")  # today's digest is due from midnight on
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    assert main(["poll", "--once"]) == 0, capsys.readouterr().err
    texts = [m.text for m in slack.channel_messages(CHANNEL)]
    assert [t for t in texts if t.startswith("Learning ended")] == [
        f"Learning ended for AWS account {OWN_ACCOUNT}: 1 identities learned silently, 1 would have been high"]
    assert sum("Digest" in t or "digest" in t for t in texts) == 1, texts
    assert main(["poll", "--once"]) == 0  # each once, also across passes
    assert len(slack.channel_messages(CHANNEL)) == len(texts)


def test_poll_once_escalates_a_contact_that_timed_out(aws, slack, sqlite_store, command_env, monkeypatch):
    from bot.contact.questions import ask
    from bot.slack.client import slack_client
    from tests.support.local_aws import worker_settings as settings_of

    monkeypatch.setenv("SESGUARD_CONTACT_TIMEOUT_MINUTES", "0.01")
    aws.api.add_events(*ses_calls(user("alice"), 1, days_ago=12))
    assert main(["poll", "--once"]) == 0
    aws.api.add_events(*ses_calls(user("mallory"), 1))
    assert main(["poll", "--once"]) == 0
    [row] = signals(sqlite_store)
    settings = settings_of(database_url=sqlite_store.url, slack_bot_token=slack.token, slack_api_url=slack.api_url,
                           slack_alert_channel=CHANNEL)
    slack.add_user("UMALLORY1")
    ask(sqlite_store, settings, slack_client(settings), row.signal_id, "UMALLORY1", "UTRIAGER1")


    def escalated() -> bool:  # a cron's next runs, until one finds the 0.6 s time-out over
        assert main(["poll", "--once"]) == 0
        with sqlite_store.session() as session:
            return "no answer in time" in session.exec(select(SignalHistory.action).where(
                SignalHistory.signal_id == row.signal_id)).all()

    wait_for(escalated, "a poll --once to escalate the unanswered contact")
    assert signals(sqlite_store)[0].status == "escalated"


def test_poll_once_exits_1_when_slack_fails_and_posts_on_the_next_pass(aws, slack, sqlite_store, command_env):
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    assert main(["poll", "--once"]) == 0
    aws.api.add_events(*ses_calls(user("mallory"), 1))
    reported = len(slack.channel_messages(CHANNEL))  # the learning report of the backfill's pass
    slack.fail("chat.postMessage", "invalid_auth", times=2)  # the pass's notifier, and its second look at the end
    assert main(["poll", "--once"]) == 1
    assert len(slack.channel_messages(CHANNEL)) == reported
    assert main(["poll", "--once"]) == 0
    assert len(slack.channel_messages(CHANNEL)) == reported + 1


def test_poll_once_exits_1_when_cloudtrail_fails(aws, slack, sqlite_store, command_env, capsys):
    aws.api.inject("error500", times=20)
    assert main(["poll", "--once"]) == 1
    assert "FAILED" in capsys.readouterr().err
    # each event source: its request and three retries, SESGUARD_RETRY_SECONDS apart
    attempts = Counter((r.event_source, r.error) for r in aws.api.lookups())
    assert attempts == {(source, "error500"): 4 for source in EVENT_SOURCES}
    assert state(sqlite_store).consecutive_failures == 1 and state(sqlite_store).watermark is None


def test_poll_once_without_slack_settings_stops_with_one_line(aws, sqlite_store, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", sqlite_store.url)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    assert main(["poll", "--once"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["sesguard: SLACK_BOT_TOKEN is not set (see .env.example)"]


def test_a_pass_killed_half_way_loses_nothing_and_repeats_nothing(aws, slack, sqlite_store, command_env):
    """A real `sesguard poll --once` is killed while it pages through new events; the next pass
    finishes the job: every event stored once, one alert per new identity."""
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    assert main(["poll", "--once"]) == 0
    new = ses_calls(user("mallory"), 60, minutes_ago=3) + ses_calls(user("oscar"), 60, minutes_ago=2)
    aws.api.add_events(*new)
    already = len(aws.api.lookups())
    held = aws.api.inject("hold", first_page=False)  # the first page goes through; the second is held
    process = subprocess.Popen([sys.executable, "-m", "bot", "poll", "--once"],
                               env=subprocess_env(aws.env, command_env),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(held.reached.is_set, "the pass to reach its second page", [process])
        # SES's first page and Service Quotas' only one (the two are read side by side), then SES's second, held
        wait_for(lambda: len(aws.api.lookups()) == already + 3, "both event sources' first pages", [process])
    finally:
        process.kill()
        process.wait()
    held.release.set()
    # The killed process's poll lease (SESGUARD_LEASE_SECONDS=1) lapses, as nobody renews it.
    poll_lease = Lease(sqlite_store, f"poll:lookup:{OWN_ACCOUNT}", 1)
    wait_for(lambda: poll_lease.current_holder() is None, "the killed pass's poll lease to lapse")
    assert len(stored_event_ids(sqlite_store)) == 3  # the killed pass stored nothing half-way
    assert main(["poll", "--once"]) == 0
    stored = stored_event_ids(sqlite_store)
    assert len(stored) == 3 + len(new) and {r["eventID"] for r in new} <= set(stored)
    assert sorted(s.identity.rsplit("/", 1)[-1] for s in signals(sqlite_store)) == ["mallory", "oscar"]
    assert len([m for m in slack.channel_messages(CHANNEL) if not m.text.startswith("Learning ended")]) == 2
