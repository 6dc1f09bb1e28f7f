"""The pager against a PagerDuty Events API stand-in over real HTTP: each step of the triage that pages is
one event, through outages and throttling, never twice, never for a closed alert."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlmodel import select

from bot.alerts.notifier import post_pending
from bot.config.errors import SettingsError
from bot.config.settings import load_settings
from bot.contact import questions
from bot.contact.tables import Contact
from bot.health.report import health
from bot.page.pager import Backoff, page_pending
from bot.page.tables import Page
from bot.triage import changes
from bot.worker.ingest.poll import poll_once
from bot.worker.scheduler import Worker
from detection.signals import Status
from detection.store import SignalHistory, SignalRow, Store, utcnow
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import alert
from tests.support.slack_harness import (
    ACCOUNT,
    CHANNEL,
    TOKEN,
    TRIAGER,
    Harness,
    answer_text,
    cloudtrail_record,
    migrated_sqlite,
    settings_for,
    store_signals,
)
from tests.support.waiting import wait_for

ROUTING_KEY = "R0UT1NGKEY0F32CHARACTERSEXACTLY0"
QUICK = Backoff(base=0.05, cap=0.2, throttled_minimum=0.05)
PERSON = "UALICE01"


@pytest.fixture
def slack():
    with FakeSlack(token=TOKEN, channels={CHANNEL: (PERSON,)}) as fake:
        yield fake


@pytest.fixture
def pagerduty():
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def settings(slack, pagerduty, store):
    return settings_for(slack, store, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pagerduty.url)


def posted_signal(store, settings, user: str = "alice", **record) -> str:
    """A signal stored by the real detection and posted to the Slack stand-in."""
    [signal_id] = store_signals(store, cloudtrail_record(user=user, **record))
    post_pending(store, settings, interval=0)
    return signal_id


def page(store, settings, **kw):
    return page_pending(store, settings, backoff=QUICK, **kw)


def row(store, signal_id: str) -> SignalRow:
    with store.session() as session:
        return session.get(SignalRow, signal_id)


def pages(store) -> list[Page]:
    with store.session() as session:
        return list(session.exec(select(Page).order_by(Page.id)))


def until_sent(store, settings, pagerduty, count: int, passes: int = 50):
    """Pager passes, as the worker's job makes them, until `count` events were taken."""
    for _ in range(passes):
        result = page(store, settings)
        if len(pagerduty.accepted()) >= count and result.pending == 0:
            return result
        time.sleep(0.06)
    raise AssertionError(f"{len(pagerduty.accepted())} of {count} events taken")


# ── what is paged ────────────────────────────────────────────────────────────────────────────────────


def test_escalate_triggers_one_event_keyed_by_the_signal_with_a_link_to_the_alert(store, settings, slack, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    result = page(store, settings)
    assert (result.accepted, result.pending, result.ok) == (1, 0, True)
    [event] = pagerduty.accepted()
    assert (event["routing_key"], event["event_action"], event["dedup_key"]) == (ROUTING_KEY, "trigger", signal_id)
    payload = event["payload"]
    assert payload["severity"] == "error"  # sesguard's high: a long-term key outside the console
    assert payload["summary"].startswith("Escalated in Slack: ") and ACCOUNT in payload["summary"]
    assert payload["source"] == f"aws:{ACCOUNT}"
    details = payload["custom_details"]
    assert details["identity"] == f"arn:aws:iam::{ACCOUNT}:user/alice" and details["account_id"] == ACCOUNT
    assert details["by"] == TRIAGER and details["signal_id"] == signal_id
    ts = alert(store, signal_id).slack_ts
    link = f"https://test.slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}"
    assert event["links"] == [{"href": link, "text": "The alert in Slack"}] and details["slack_alert"] == link
    assert slack.calls_to("chat.getPermalink") == [{"channel": CHANNEL, "message_ts": ts}]

    assert page(store, settings).accepted == 0  # sent once
    restarted = Store(store.url)  # a restart never repeats a page PagerDuty accepted
    assert page(restarted, settings).accepted == 0
    restarted.engine.dispose()
    assert len(pagerduty.received) == 1 and len(pagerduty.incidents()) == 1


@pytest.mark.parametrize("step", ["not an issue", "suppress"])
def test_not_an_issue_and_suppress_resolve_the_page(store, settings, pagerduty, step):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    page(store, settings)
    if step == "not an issue":
        changes.close(store, signal_id, TRIAGER)
    else:
        changes.suppress(store, signal_id, TRIAGER, "account", "7d", "a pen-test (SEC-142)")
    assert page(store, settings).accepted == 1
    _, resolve = pagerduty.accepted()
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": signal_id}
    [incident] = pagerduty.incidents()
    assert incident.resolved and incident.dedup_key == signal_id


def test_closing_an_alert_nobody_was_paged_for_sends_nothing(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.close(store, signal_id, TRIAGER)
    result = page(store, settings)
    assert (result.accepted, result.pending) == (0, 0) and pagerduty.received == []


def web_client(slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url)


def _ask(store, settings, slack, signal_id: str) -> Contact:
    return questions.ask(store, settings, web_client(slack), signal_id, PERSON, TRIAGER).contact


@pytest.mark.parametrize("step, why, severity", [
    ("no", "The person behind the identity denied making these calls", "error"),
    ("timeout", "The person behind the identity did not answer in time", "error"),
    ("critical", "Follow-on abuse after the enumeration", "critical"),
])
def test_a_no_a_contact_time_out_and_follow_on_abuse_each_trigger(store, settings, slack, pagerduty, step, why,
                                                                   severity):
    signal_id = posted_signal(store, settings)
    client = web_client(slack)
    if step == "no":
        contact = _ask(store, settings, slack, signal_id)
        questions.answer(store, settings, client, str(contact.id), PERSON, questions.NO)
    elif step == "timeout":
        _ask(store, settings, slack, signal_id)
        questions.escalate_overdue(store, settings, client, now=utcnow() + timedelta(hours=1))
    else:  # what an investigation writes when it finds the playbook's next calls
        with store.session() as session:
            signal = changes.lock_signal(session, signal_id)
            signal.severity = "critical"
            changes.record(session, signal, "sesguard", "critical: follow-on abuse", signal.status, "SendEmail ×40")
            session.commit()
    assert page(store, settings).accepted == 1
    [event] = pagerduty.accepted()
    assert event["payload"]["summary"].startswith(why + ": ") and event["payload"]["severity"] == severity


def test_a_time_out_after_the_alert_was_closed_pages_nothing(store, settings, slack, pagerduty):
    signal_id = posted_signal(store, settings)
    _ask(store, settings, slack, signal_id)
    changes.close(store, signal_id, TRIAGER)
    questions.escalate_overdue(store, settings, web_client(slack), now=utcnow() + timedelta(hours=1))
    assert row(store, signal_id).status == Status.CLOSED
    assert page(store, settings).accepted == 0 and pagerduty.received == []


def test_without_a_routing_key_nothing_is_paged(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    unpaged = settings.model_copy(update={"pagerduty_routing_key": None})
    assert page(store, unpaged).accepted == 0
    assert pages(store) == [] and pagerduty.received == []
    assert health(store, unpaged).paging is None


def test_history_older_than_a_day_when_first_seen_is_not_paged(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    with store.session() as session:
        session.execute(sa.update(SignalHistory).where(SignalHistory.signal_id == signal_id)
                        .values(at=utcnow() - timedelta(days=2)))
        session.commit()
    assert page(store, settings).accepted == 0 and pagerduty.received == []


# ── PagerDuty misbehaving ────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("fault", ["server_error", "drop", "throttle"])
def test_an_outage_or_throttling_delays_the_page_and_it_is_sent_once(store, settings, pagerduty, fault):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    pagerduty.fail(fault, times=3)
    first = page(store, settings)
    assert (first.accepted, first.failed, first.pending, first.ok) == (0, 1, 1, False)
    [waiting] = pages(store)
    assert waiting.outcome is None and waiting.last_error
    assert waiting.next_attempt_at.timestamp() > pagerduty.received[-1].at  # later, not at once
    until_sent(store, settings, pagerduty, 1)
    refused_with = {"server_error": 500, "drop": 0, "throttle": 429}[fault]
    assert [r.status for r in pagerduty.received] == [refused_with] * 3 + [202]
    [event] = pagerduty.accepted()
    assert event["dedup_key"] == signal_id and len(pagerduty.incidents()) == 1
    [sent] = pages(store)
    assert (sent.outcome, sent.attempts) == ("accepted", 4)


def test_a_429_with_retry_after_waits_that_long(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    pagerduty.fail("throttle", times=1, retry_after=2)
    assert page(store, settings).failed == 1
    assert page(store, settings).accepted == 0  # not due yet
    until_sent(store, settings, pagerduty, 1)
    throttled, taken = pagerduty.received
    assert taken.at - throttled.at >= 2.0


def test_a_failure_ends_the_pass_and_the_other_pages_wait_for_the_next(store, settings, pagerduty):
    for user in ("alice", "bob", "carol"):
        changes.escalate(store, posted_signal(store, settings, user=user), TRIAGER)
    pagerduty.fail("server_error", times=1)
    first = page(store, settings)
    assert (first.failed, first.pending) == (1, 3) and len(pagerduty.received) == 1
    until_sent(store, settings, pagerduty, 3)
    assert len({e["dedup_key"] for e in pagerduty.accepted()}) == 3


def test_a_lost_answer_is_sent_again_with_the_same_dedup_key_and_stays_one_incident(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    pagerduty.fail("lost_answer", times=1)
    assert page(store, settings).failed == 1
    until_sent(store, settings, pagerduty, 2)
    assert [e["dedup_key"] for e in pagerduty.accepted()] == [signal_id, signal_id]
    [incident] = pagerduty.incidents()
    assert len(incident.triggers) == 2


def test_an_event_pagerduty_rejects_is_recorded_not_retried_and_shown_in_status(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    # The stand-in applies PagerDuty's rules: a routing key that is not 32 characters is an invalid event
    # (settings refuse one at start-up; model_copy does not validate).
    wrong = settings.model_copy(update={"pagerduty_routing_key": SecretStr("too-short")})
    result = page(store, wrong)
    assert (result.rejected, result.accepted, result.ok) == (1, 0, False)
    assert "routing_key" in result.errors[0]
    [rejected] = pages(store)
    assert rejected.outcome == "rejected" and "'routing_key' must be a 32 character string" in rejected.last_error
    assert page(store, settings).rejected == 0 and len(pagerduty.received) == 1  # never sent again
    report = health(store, settings)
    assert report.as_dict()["rejected_pages"] == 1 and report.as_dict()["pending_pages"] == 0
    assert "1 pages rejected by PagerDuty in the last 7 days" in report.lines()
    assert any("routing_key" in line for line in report.lines())
    assert "routing_key" not in json.dumps(report.as_dict())  # /healthz: counts only


def test_sesguard_status_tells_triagers_about_waiting_and_rejected_pages(tmp_path, pagerduty):
    with Harness(migrated_sqlite(tmp_path), pagerduty_routing_key=ROUTING_KEY,
                 pagerduty_events_url=pagerduty.url) as bot:
        for user in ("alice", "bob"):
            changes.escalate(bot.store, posted_signal(bot.store, bot.settings, user=user), TRIAGER)
        pagerduty.fail("server_error", times=1)
        assert page(bot.store, bot.settings).failed == 1
        answer = answer_text(bot.command("status"))
        assert "2 pages waiting for PagerDuty (oldest since " in answer
        assert "last PagerDuty error: HTTP 500 Internal server error" in answer


def test_a_trigger_still_waiting_when_the_alert_is_closed_never_wakes_anyone(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    pagerduty.fail("server_error", times=1)
    assert page(store, settings).failed == 1
    changes.close(store, signal_id, TRIAGER)
    result = until_sent(store, settings, pagerduty, 1)
    assert [e["event_action"] for e in pagerduty.accepted()] == ["resolve"]
    assert pagerduty.incidents() == []
    assert [p.outcome for p in pages(store)] == ["superseded", "accepted"] and result.superseded == 1


def test_a_hostile_identity_makes_a_valid_event(store, settings, pagerduty):
    hostile = "<!channel>\u202e" * 140  # an ARN of about 1,900 bytes (AWS allows 2,048), bidi overrides included
    signal_id = posted_signal(store, settings, user=hostile)
    changes.escalate(store, signal_id, TRIAGER)
    assert page(store, settings).accepted == 1  # the stand-in enforces PagerDuty's limits
    [event] = pagerduty.accepted()
    assert len(event["payload"]["summary"]) <= 1024 and "\u202e" not in json.dumps(event, ensure_ascii=False)
    assert len(json.dumps(event)) < 512 * 1024


def test_two_passes_at_once_send_each_page_once(store, settings, pagerduty):
    for user in ("alice", "bob", "carol", "dave", "erin"):
        changes.escalate(store, posted_signal(store, settings, user=user), TRIAGER)
    barrier = threading.Barrier(2)
    results = []

    def one_pass() -> None:
        barrier.wait()
        results.append(page(store, settings))

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    until_sent(store, settings, pagerduty, 5)
    assert sorted(e["dedup_key"] for e in pagerduty.accepted()) == sorted({p.signal_id for p in pages(store)})
    assert len(pagerduty.received) == 5


def test_a_page_whose_request_outlasts_its_claim_is_not_sent_again_by_another_pass(store, slack, pagerduty):
    """The claim (SESGUARD_LEASE_SECONDS) is renewed while PagerDuty holds the request: before, another pass took
    the lapsed claim over and sent the page a second time while the first request was still in flight."""
    settings = settings_for(slack, store, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pagerduty.url,
                            lease_seconds=0.6)
    changes.escalate(store, posted_signal(store, settings), TRIAGER)
    held = pagerduty.hold()
    first = threading.Thread(target=page, args=(store, settings))
    first.start()
    try:
        assert held.reached.wait(30)
        [waiting] = pages(store)
        claimed_until = waiting.claimed_until
        wait_for(lambda: utcnow() > claimed_until + timedelta(seconds=0.3), "the first claim's end to pass")
        second = page(store, settings)  # another process's pass, while the first request is in flight
        assert second.accepted == 0 and second.failed == 0 and second.pending == 1
    finally:
        held.release.set()
        first.join(30)
    assert len(pagerduty.received) == 1 and len(pagerduty.accepted()) == 1
    assert [p.outcome for p in pages(store)] == ["accepted"]


# ── where the pager runs ─────────────────────────────────────────────────────────────────────────────


class NoSource:
    """A source with nothing to read: the pass goes straight to Slack and PagerDuty."""

    name, history = "lookup", None

    def places(self):
        return []

    def pull(self, *args):
        raise AssertionError("nothing to pull")

    def remember(self, pulled) -> None:
        pass


def test_poll_once_ends_with_a_pager_pass_and_fails_when_pagerduty_does(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    pagerduty.fail("server_error", times=1)
    failed = poll_once(settings, store, NoSource())
    assert not failed.ok and any(line.startswith("pager: 0 accepted") for line in failed.lines())
    with store.session() as session:  # the backoff has passed
        session.execute(sa.update(Page).values(next_attempt_at=utcnow()))
        session.commit()
    done = poll_once(settings, store, NoSource())
    assert done.ok and done.paged.accepted == 1
    assert [e["dedup_key"] for e in pagerduty.accepted()] == [signal_id]


def test_the_worker_runs_the_pager(store, settings, pagerduty):
    signal_id = posted_signal(store, settings)
    changes.escalate(store, signal_id, TRIAGER)
    worker = Worker(settings.model_copy(update={"poll_seconds": 0.2}), store, NoSource())
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not pagerduty.accepted() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop.set()
    thread.join(30)
    assert [e["dedup_key"] for e in pagerduty.accepted()] == [signal_id] and not thread.is_alive()


def test_a_routing_key_that_is_not_32_characters_stops_start_up_without_echoing_it():
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, PAGERDUTY_ROUTING_KEY="my-secret-but-too-short")
    assert "invalid setting PAGERDUTY_ROUTING_KEY" in refused.value.message
    assert "my-secret" not in refused.value.message
    assert load_settings(_env_file=None, PAGERDUTY_ROUTING_KEY=ROUTING_KEY).pagerduty_routing_key is not None
