"""The worker: the scheduler lease, housekeeping, and two real worker processes on one PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.context.tables import ContextLookup
from bot.store.lease import Lease
from bot.store.schema import migrate
from bot.worker.scheduler import SCHEDULER_LEASE, Worker, housekeeping
from bot.worker.tables import PollState
from detection.baseline import Tuning
from detection.scan import detect
from detection.sources.files import scan_bytes
from detection.sources.lookup import LookupSource
from detection.store import EventRow, KnownIdentity, SignalHistory, SignalRow, Store, utcnow
from tests.fakes.slack_api import FakeSlack
from tests.support import waiting
from tests.support.alerts import alerts
from tests.support.local_aws import OWN_ACCOUNT, ses_calls, subprocess_env, user, worker_settings
from tests.support.postgres import empty_postgres as _empty_postgres
from tests.support.records import encode

pytestmark = pytest.mark.processes

CHANNEL = "C0ALERTS"
# Generous bounds for things that take a second or two: they only stop a broken test from hanging.
PATIENCE_SECONDS = 90


def wait_for(condition, what: str, processes=()) -> None:
    waiting.wait_for(condition, what, processes, patience=PATIENCE_SECONDS)


class Clock:
    """The leases' clock, moved by the test: a lease runs out when the test says so, not when a sleep ends."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# ── leases ───────────────────────────────────────────────────────────────────────────────────────────


def test_one_holder_at_a_time_and_a_lapsed_lease_is_taken_over(store, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("bot.store.lease.utcnow", clock)
    first, second = Lease(store, "scheduler", 30), Lease(store, "scheduler", 30)
    assert first.acquire() and not second.acquire()
    clock.advance(29)
    assert first.renew() and first.acquire()  # taking it again is renewing it
    assert first.current_holder() == first.holder
    clock.advance(29)
    assert not second.acquire()  # renewed 29 s ago: still the first's
    clock.advance(2)  # the first holder stopped renewing (it died): 31 s since
    assert second.acquire() and second.current_holder() == second.holder
    assert not first.renew()  # and learns it lost the lease
    second.release()
    assert second.current_holder() is None and first.acquire()


# ── housekeeping ─────────────────────────────────────────────────────────────────────────────────────


def test_housekeeping_prunes_old_events_and_forgotten_identities(store):
    calls = {name: ses_calls(user(name), 1, days_ago=days)[0]
             for name, days in (("carol", 11), ("dave", 9), ("erin", 30), ("frank", 28.5))}
    scanned = scan_bytes("history.jsonl", encode(list(calls.values()), "lines"))
    detect(scanned.calls, Tuning(), store, learn_only=True)
    settings = worker_settings(database_url=store.url, event_retention_days=10, forget_days=28)
    with store.session() as session:  # the triage context's cached lookups: a day old, and fresh
        session.add_all([ContextLookup(key="old", answer={}, fetched_at=utcnow() - timedelta(days=1, minutes=1)),
                         ContextLookup(key="fresh", answer={})])
        session.commit()

    pruned = housekeeping(store, settings)

    assert pruned == {"events past the retention": 3, "S3 objects past the retention": 0, "forgotten identities": 1,
                      "cached context lookups": 1}
    with store.session() as session:
        assert list(session.exec(select(EventRow.event_id))) == [calls["dave"]["eventID"]]
        known = session.exec(select(KnownIdentity.identity))
        assert sorted(i.rsplit("/", 1)[-1] for i in known) == ["carol", "dave", "frank"]
        assert list(session.exec(select(ContextLookup.key))) == ["fresh"]


# ── the worker ───────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def slack():
    with FakeSlack(channels={CHANNEL: ()}) as fake:
        yield fake


def slack_settings(slack, url, **values):
    return worker_settings(database_url=url, slack_bot_token=slack.token, slack_alert_channel=CHANNEL,
                           slack_api_url=slack.api_url, poll_seconds=0.2, lease_seconds=1.2, backfill_days=30, **values)


def test_a_waiting_worker_takes_over_when_the_first_stops(aws, slack, sqlite_store):
    aws.api.add_events(*ses_calls(user("alice"), 2, days_ago=10))
    settings = slack_settings(slack, sqlite_store.url)
    workers = [Worker(settings, sqlite_store, LookupSource(settings.aws_regions, [], sqlite_store)) for _ in range(2)]
    threads = [threading.Thread(target=worker.run) for worker in workers]
    threads[0].start()
    wait_for(lambda: Lease(sqlite_store, SCHEDULER_LEASE, 1).current_holder() == workers[0].lease.holder, "a holder")
    threads[1].start()
    wait_for(lambda: _watermark(sqlite_store) is not None, "the backfill")
    aws.api.add_events(*ses_calls(user("mallory"), 1))
    wait_for(lambda: len(alerts_in(slack)) == 1, "the first alert")

    workers[0].stop.set()  # as SIGTERM does: the running job ends, the lease is handed back
    threads[0].join(timeout=PATIENCE_SECONDS)
    assert not threads[0].is_alive()
    wait_for(lambda: Lease(sqlite_store, SCHEDULER_LEASE, 1).current_holder() == workers[1].lease.holder, "a takeover")
    aws.api.add_events(*ses_calls(user("oscar"), 1))
    wait_for(lambda: len(alerts_in(slack)) == 2, "the second alert")
    workers[1].stop.set()
    threads[1].join(timeout=PATIENCE_SECONDS)
    assert not threads[1].is_alive() and Lease(sqlite_store, SCHEDULER_LEASE, 1).current_holder() is None
    assert len(alerts_in(slack)) == 2


def alerts_in(slack) -> list:
    """The alert messages in the channel (not the learning report beside them)."""
    return [m for m in slack.channel_messages(CHANNEL) if (m.metadata or {}).get("event_type") == "sesguard_alert"]


def alert_posts(slack) -> list[dict]:
    """The alerts posted (not the automatic investigations' summaries in their threads)."""
    return [c for c in slack.calls_to("chat.postMessage", answered_only=True) if not c.get("thread_ts")]


def _watermark(store, region="us-east-1"):
    with store.session() as session:
        row = session.get(PollState, ("lookup", OWN_ACCOUNT, region))
        return row.watermark if row else None


def test_two_worker_processes_on_postgresql_never_double_process_or_double_post(aws, slack, postgres_url, tmp_path):
    """Two `sesguard worker` processes share one PostgreSQL database: one runs the jobs, the other
    waits; the holder is killed (-9) and the other takes over; every alert is posted exactly once,
    every event is stored once, the API is never throttled, and SIGTERM ends the survivor cleanly."""
    _empty_postgres(postgres_url)
    store = Store(postgres_url)
    migrate(store)  # the workers migrate too (under an advisory lock); the test reads tables at once
    regions = ("us-east-1", "eu-west-1")
    aws.api.add_events(*ses_calls(user("alice"), 20, days_ago=15),
                       *ses_calls(user("alice"), 5, days_ago=3, region="eu-west-1"))
    env = subprocess_env(aws.env, {
        "DATABASE_URL": postgres_url, "SLACK_BOT_TOKEN": slack.token, "SLACK_ALERT_CHANNEL": CHANNEL,
        "SLACK_API_URL": slack.api_url, "SESGUARD_POLL_SECONDS": "0.2", "SESGUARD_LEASE_SECONDS": "1.5",
        "SESGUARD_BACKFILL_DAYS": "30", "AWS_REGIONS": ",".join(regions),
    })
    logs = [open(tmp_path / f"worker{n}.log", "w+") for n in (1, 2)]
    workers = [subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env, stdout=log, stderr=log)
               for log in logs]
    try:
        wait_for(lambda: all(_watermark(store, r) for r in regions), "the backfill", workers)
        first = [ses_calls(user("mallory"), 3, region=r) for r in regions] + [ses_calls(user("oscar"), 2)]
        aws.api.add_events(*[r for batch in first for r in batch])
        wait_for(lambda: len(alerts_in(slack)) == 2, "two alerts", workers)

        holder = Lease(store, SCHEDULER_LEASE, 1).current_holder()
        killed = next(w for w in workers if holder and holder.split(":")[1] == str(w.pid))
        survivor = next(w for w in workers if w is not killed)
        killed.kill()
        killed.wait()
        aws.api.add_events(*ses_calls(user("peggy"), 2, region="eu-west-1"))
        wait_for(lambda: len(alerts_in(slack)) == 3, "the alert after the takeover", [survivor])
        for _ in range(2):  # two more passes with nothing new: nothing more is posted
            moment = utcnow()
            wait_for(lambda moment=moment: _polled_since(store, moment), "another poll", [survivor])

        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=PATIENCE_SECONDS) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    output = [open(tmp_path / f"worker{n}.log").read() for n in (1, 2)]
    assert sum(text.count("holds the scheduler lease") for text in output) == 2  # first the killed, then the survivor
    assert "stopped" in output[workers.index(survivor)]

    posted = alerts_in(slack)
    assert sorted(m.metadata["event_payload"]["signal_id"] for m in posted) == sorted(
        s.signal_id for s in _rows(store, SignalRow))
    # alice, learned by the backfill: the account's learning report, posted once by the two processes
    [report] = [m for m in slack.channel_messages(CHANNEL) if m not in posted]
    assert report.metadata["event_type"] == "sesguard_learning_report" and "user/alice" in str(report.blocks)
    assert len(alert_posts(slack)) == 3 + 1  # every top-level post: the three alerts and the report
    rows = alerts(store)
    assert sorted(r.identity.rsplit("/", 1)[-1] for r in rows) == ["mallory", "oscar", "peggy"]
    assert all(r.slack_ts for r in rows) and next(r for r in rows if r.identity.endswith("mallory")).severity == "high"
    assert len([h for h in _rows(store, SignalHistory) if h.action == "detected"]) == 3
    assert len(_rows(store, EventRow)) == 25 + 6 + 2 + 2
    assert aws.api.busiest_window() <= 2 and not [r for r in aws.api.lookups() if r.error]
    assert Lease(store, SCHEDULER_LEASE, 1).current_holder() is None  # handed back on SIGTERM
    store.engine.dispose()


def _rows(store, model):
    with store.session() as session:
        return list(session.exec(select(model)))


def _polled_since(store, moment) -> bool:
    rows = _rows(store, PollState)
    return bool(rows) and all(row.last_success_at and row.last_success_at > moment for row in rows)
