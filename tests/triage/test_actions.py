"""The alert's buttons and the Suppress… modal, through the HTTP endpoint with requests signed as Slack signs them."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.slack.app import build_app
from bot.slack.tables import SlackRequest
from bot.triage import changes
from bot.worker.tables import PollState
from detection.store import AuditEntry, SignalHistory, SignalRow, SuppressionRow, utcnow
from tests.fakes.slack_api import FakeSlack
from tests.support.slack_harness import (
    ACCOUNT,
    CHANNEL,
    OUTSIDER,
    PEOPLE,
    TRIAGER,
    Harness,
    cloudtrail_record,
    settings_for,
    store_signals,
)
from tests.support.slack_signing import get, post, signed_headers

ESCALATE, CONTACT = "sesguard.escalate", "sesguard.contact_user"
SUPPRESS, CLOSE = "sesguard.suppress", "sesguard.not_an_issue"
INVESTIGATE = "sesguard.investigate"
REOPEN = "sesguard.reopen"


def posted(bot: Harness, *records: dict) -> tuple[str, str]:
    [signal_id] = store_signals(bot.store, *(records or [cloudtrail_record()]))
    assert bot.post_alerts().posted == 1
    return signal_id, bot.alert(signal_id).slack_ts


def history(bot: Harness, signal_id: str) -> list[tuple[str, str, str]]:
    with bot.store.session() as session:
        steps = select(SignalHistory).where(SignalHistory.signal_id == signal_id).order_by(SignalHistory.id)
        rows = session.exec(steps)
        return [(r.actor, r.action, r.status) for r in rows]


def snapshot(bot: Harness, signal_id: str) -> tuple:
    return bot.alert(signal_id).status, history(bot, signal_id), len(bot.slack.calls)


def thread(bot: Harness, ts: str) -> list[str]:
    return [m.text for m in bot.slack.replies(CHANNEL, ts)]


# ── the endpoint ─────────────────────────────────────────────────────────────────────────────────────


def test_url_verification_answers_the_challenge(bot):
    reply = bot.sender.event({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                              "type": "url_verification"})
    assert reply.status == 200 and reply.json()["challenge"] == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


@pytest.mark.parametrize("forgery", ["wrong secret", "stale timestamp", "future timestamp"])
def test_a_forged_or_stale_request_gets_401_and_changes_nothing(bot, forgery):
    signal_id, ts = posted(bot)
    before = snapshot(bot, signal_id)
    kw = {"wrong secret": {"secret": "not-the-signing-secret"},
          "stale timestamp": {"timestamp": int(time.time()) - 6 * 60},
          "future timestamp": {"timestamp": int(time.time()) + 6 * 60}}[forgery]
    reply = bot.click(ESCALATE, TRIAGER, CHANNEL, ts, **kw)
    bot.settle()
    assert reply.status == 401
    assert snapshot(bot, signal_id) == before


def test_a_replayed_request_gets_401_and_changes_nothing(bot):
    signal_id, ts = posted(bot)
    body = urlencode({"payload": json.dumps(bot.click_payload(CLOSE, TRIAGER, CHANNEL, ts))}).encode()
    headers = signed_headers(bot.sender.secret, body, "application/x-www-form-urlencoded")
    assert post(bot.sender.url, body, headers).status == 200
    bot.settle()
    bot.store.engine.dispose()  # a restart in between changes nothing: the signature is in the store
    before = snapshot(bot, signal_id)
    replay = post(bot.sender.url, body, headers)
    bot.settle()
    assert replay.status == 401 and snapshot(bot, signal_id) == before
    assert history(bot, signal_id)[-1] == (TRIAGER, "not an issue", "closed")


def test_forged_requests_are_not_remembered(bot):
    with bot.store.session() as session:
        assert session.exec(select(sa.func.count()).select_from(SlackRequest)).one() == 0
    bot.sender.event({"type": "url_verification", "challenge": "c"}, secret="forged")
    with bot.store.session() as session:
        assert session.exec(select(sa.func.count()).select_from(SlackRequest)).one() == 0


def test_a_request_without_signature_headers_gets_401(bot):
    body = b'payload={"type":"block_actions"}'
    reply = post(bot.sender.url, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 401 and bot.slack.calls == []


def test_healthz_reports_the_polling_and_turns_503_when_it_fails(bot):
    reply = get(f"{bot.base}/healthz")
    assert reply.status == 200 and reply.json()["ok"] is True
    with bot.store.session() as session:
        session.add(PollState(source="lookup", account_id=ACCOUNT, region="us-east-1", consecutive_failures=4,
                              last_success_at=utcnow() - timedelta(hours=2), last_error="AccessDenied",
                              last_error_at=utcnow()))
        session.commit()
    reply = get(f"{bot.base}/healthz")
    assert reply.status == 503 and reply.json()["ok"] is False
    assert reply.json()["failing_sources"] == 1 and reply.json()["delivery_failing"] is False
    # Status and counts only: the account and the error are for triagers, in /sesguard status.
    assert set(reply.json()) == {"ok", "checked_at", "sources", "failing_sources", "delivery_failing",
                                 "pending_alerts", "oldest_pending_seconds", "alerts_set_aside"}
    assert ACCOUNT not in reply.body.decode() and "AccessDenied" not in reply.body.decode()
    assert get(f"{bot.base}/nothing-here").status == 404


# ── buttons ──────────────────────────────────────────────────────────────────────────────────────────


def test_escalate_updates_the_alert_in_place_and_adds_a_thread_line(bot):
    signal_id, ts = posted(bot)
    reply = bot.click(ESCALATE, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert reply.status == 200
    assert bot.alert(signal_id).status == "escalated"
    assert history(bot, signal_id)[-1] == (TRIAGER, "escalated", "escalated")
    [update] = bot.slack.calls_to("chat.update")
    assert (update["channel"], update["ts"]) == (CHANNEL, ts)
    assert f"Escalated, by <@{TRIAGER}>" in json.dumps(update["blocks"])
    assert bot.buttons(CHANNEL, ts) == [CONTACT, SUPPRESS, CLOSE, INVESTIGATE]
    assert thread(bot, ts) == [f":arrow_up: Escalated by <@{TRIAGER}>."]


def test_slack_answering_500_and_429_while_updating_the_alert_is_retried(bot):
    signal_id, ts = posted(bot)
    bot.slack.fail("chat.update", "server_error")
    bot.slack.fail("chat.postMessage", "ratelimited", retry_after=1)
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert [c.fault for c in bot.slack.calls if c.method == "chat.update"] == ["server_error", None]
    assert bot.buttons(CHANNEL, ts) == [CONTACT, SUPPRESS, CLOSE, INVESTIGATE]
    assert thread(bot, ts) == [f":arrow_up: Escalated by <@{TRIAGER}>."]
    assert bot.alert(signal_id).posted_at >= bot.alert(signal_id).updated_at  # nothing left for the notifier
    # Slack's Retry-After (1 s) and the 5xx pause, counted by the app's client (the harness's sleep)
    assert len(bot.slept) == 2 and max(bot.slept) >= 1.0


def test_when_slack_stays_down_the_notifier_brings_the_alert_up_to_date_later(bot):
    signal_id, ts = posted(bot)
    bot.slack.fail("chat.update", "server_error", times=3)
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts)
    bot.executor.drain()
    assert len(bot.errors) == 1 and bot.alert(signal_id).status == "escalated"  # stored, not shown
    bot.errors.clear()
    assert ESCALATE in bot.buttons(CHANNEL, ts)
    assert bot.post_alerts().updated == 1
    assert bot.buttons(CHANNEL, ts) == [CONTACT, SUPPRESS, CLOSE, INVESTIGATE]


def test_not_an_issue_closes_the_alert(bot):
    signal_id, ts = posted(bot)
    bot.click(CLOSE, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert bot.alert(signal_id).status == "closed"
    assert history(bot, signal_id)[-1] == (TRIAGER, "not an issue", "closed")
    assert bot.buttons(CHANNEL, ts) == [SUPPRESS, INVESTIGATE, REOPEN]
    assert "not an issue" in thread(bot, ts)[0]


def test_a_double_click_acts_once(bot):
    signal_id, ts = posted(bot)
    button = bot.button(CHANNEL, ts, ESCALATE)
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts, button=button)
    bot.settle()
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts, button=button)  # the message on screen was not refreshed yet
    bot.settle()
    assert [h for h in history(bot, signal_id) if h[1] == "escalated"] == [(TRIAGER, "escalated", "escalated")]
    assert len(bot.slack.calls_to("chat.update")) == 1 and len(thread(bot, ts)) == 1
    [note] = bot.ephemerals(TRIAGER)
    assert note.startswith("Nothing was changed: this alert is already at *Escalated*")


def test_two_clicks_racing_each_other_act_once(store):
    with Harness(store, slack_triagers=[TRIAGER, "UTRIAGER2"]) as bot:
        signal_id, ts = posted(bot)
        button = bot.button(CHANNEL, ts, CLOSE)
        start = threading.Barrier(2)
        replies = []

        def click(user):
            start.wait()
            replies.append(bot.click(CLOSE, user, CHANNEL, ts, button=button).status)

        threads = [threading.Thread(target=click, args=(user,)) for user in (TRIAGER, "UTRIAGER2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bot.settle()
        assert replies == [200, 200]
        assert len([h for h in history(bot, signal_id) if h[1] == "not an issue"]) == 1
        assert len(thread(bot, ts)) == 1 and len(bot.slack.calls_to("chat.postEphemeral")) == 1


def _wait_for_a_blocked_transaction(connection) -> None:
    """Until another session of this database waits for a lock (what a racing click does at the row lock)."""
    waiting = sa.text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                      "WHERE NOT l.granted AND a.datname = current_database()")
    deadline = time.monotonic() + 10
    while not connection.execute(waiting).scalar():
        assert time.monotonic() < deadline, "the click never waited for the lock"
        time.sleep(0.01)


def test_a_click_waits_for_the_signals_row_lock_and_sees_the_change_made_meanwhile(postgres_store):
    """The race above, made certain: a click that arrives while another transaction holds the signal reads
    it only once that transaction has ended, so it sees the status it left and changes nothing. (A row lock
    is PostgreSQL's; SQLite lets one writer in at a time.)"""
    store = postgres_store
    [signal_id] = store_signals(store, cloudtrail_record())
    with store.engine.connect() as other:
        transaction = other.begin()
        other.execute(sa.select(SignalRow.signal_id).where(SignalRow.signal_id == signal_id).with_for_update())
        outcome = {}
        click = threading.Thread(target=lambda: outcome.update(change=changes.close(store, signal_id, TRIAGER)))
        click.start()
        _wait_for_a_blocked_transaction(other)
        other.execute(sa.update(SignalRow).where(SignalRow.signal_id == signal_id).values(status="closed"))
        transaction.commit()
        click.join(timeout=30)
    assert outcome["change"].changed is False and outcome["change"].previous_status == "closed"
    with store.session() as session:
        assert session.exec(select(SignalHistory.action).where(SignalHistory.signal_id == signal_id)).all() == [
            "detected"]


def test_a_non_triager_is_refused_ephemerally_and_nothing_changes(bot):
    signal_id, ts = posted(bot)
    before_status, before_history, _ = snapshot(bot, signal_id)
    for action in (ESCALATE, CLOSE, SUPPRESS, CONTACT):
        assert bot.click(action, OUTSIDER, CHANNEL, ts).status == 200
    bot.settle()
    assert bot.alert(signal_id).status == before_status and history(bot, signal_id) == before_history
    # The alert itself, then only refusals: no update, no thread, no modal; no auth.test (see bot.slack.app).
    assert set(bot.slack.methods()) == {"chat.postMessage", "chat.postEphemeral"}
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    refusals = bot.slack.calls_to("chat.postEphemeral")
    assert len(refusals) == 4 and all(r["user"] == OUTSIDER and "Only triagers" in r["text"] for r in refusals)


def test_members_of_the_triage_usergroup_may_triage(sqlite_store):
    with Harness(sqlite_store, slack_triagers=[], slack_triage_usergroup="S0TRIAGE") as bot:
        bot.slack.usergroups["S0TRIAGE"] = ["UMEMBER01"]
        signal_id, ts = posted(bot)
        bot.click(ESCALATE, OUTSIDER, CHANNEL, ts)
        bot.settle()
        assert bot.alert(signal_id).status == "new"
        bot.click(ESCALATE, "UMEMBER01", CHANNEL, ts)
        bot.settle()
        assert bot.alert(signal_id).status == "escalated"
        assert bot.slack.calls_to("usergroups.users.list")[0]["usergroup"] == "S0TRIAGE"


def test_start_up_warns_when_everyone_may_triage(sqlite_store, caplog):
    with FakeSlack(channels={CHANNEL: PEOPLE}) as slack, caplog.at_level(logging.WARNING, logger="bot.slack.app"):
        build_app(settings_for(slack, sqlite_store, slack_triagers=[], slack_triage_usergroup=None), sqlite_store)
        assert "everyone in the workspace may triage" in caplog.text
        caplog.clear()
        build_app(settings_for(slack, sqlite_store), sqlite_store)
        assert "everyone" not in caplog.text


def test_button_values_are_not_trusted(bot):
    signal_id, ts = posted(bot)
    other_id, other_ts = posted(bot, cloudtrail_record(user="bob"))
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts, value=other_id)  # a value edited to point at another alert
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts, value="sg-doesnotexist'; DROP TABLE signals;--")
    bot.settle()
    assert bot.alert(signal_id).status == "new" and bot.alert(other_id).status == "new"
    notes = bot.ephemerals(TRIAGER)
    assert "does not belong to that alert" in notes[0] and "not known" in notes[1]
    assert bot.slack.calls_to("chat.update") == []


# ── Suppress… ────────────────────────────────────────────────────────────────────────────────────────


def suppress_values(scope="account", duration="7d", reason="Scheduled pen-test, ticket SEC-142") -> dict:
    return {
        "scope": {"type": "radio_buttons", "selected_option": {"value": scope}},
        "duration": {"type": "radio_buttons", "selected_option": {"value": duration}},
        "reason": {"type": "plain_text_input", "value": reason},
    }


def open_suppress(bot: Harness, ts: str) -> dict:
    bot.click(SUPPRESS, TRIAGER, CHANNEL, ts)
    bot.settle()
    [opened] = bot.slack.calls_to("views.open")[-1:]
    assert opened["trigger_id"] and bot.slack.errors_of("views.open")[-1] is None  # opened within 3 s
    return opened["view"]


def test_suppress_opens_a_modal_and_its_submission_suppresses(bot):
    signal_id, ts = posted(bot)
    view = open_suppress(bot, ts)
    assert view["callback_id"] == "sesguard.suppress_modal" and view["private_metadata"] == signal_id
    assert {b.get("block_id") for b in view["blocks"]} >= {"scope", "duration", "reason"}
    reply = bot.submit(view, TRIAGER, suppress_values(reason="pen-test <!channel> & co"))
    bot.settle()
    assert reply.status == 200 and reply.body in (b"", b"{}")
    with bot.store.session() as session:
        [row] = session.exec(select(SuppressionRow)).all()
        audit = session.exec(select(AuditEntry)).all()
    assert (row.identity, row.account_id, row.author) == (bot.alert(signal_id).identity, ACCOUNT, TRIAGER)
    assert row.reason == "pen-test <!channel> & co"
    assert timedelta(days=7) - timedelta(minutes=1) < row.expires_at - row.created_at <= timedelta(days=7)
    assert [(a.action, a.actor) for a in audit] == [("suppression created", TRIAGER)]
    assert bot.alert(signal_id).status == "suppressed" and bot.alert(signal_id).suppression_id == row.id
    assert bot.buttons(CHANNEL, ts) == [REOPEN]
    [line] = thread(bot, ts)
    assert f"Suppressed by <@{TRIAGER}>" in line and "&lt;!channel&gt; &amp; co" in line and "<!channel>" not in line


def test_suppress_everywhere_with_no_expiry(bot):
    signal_id, ts = posted(bot)
    bot.submit(open_suppress(bot, ts), TRIAGER, suppress_values(scope="everywhere", duration="never"))
    bot.settle()
    with bot.store.session() as session:
        [row] = session.exec(select(SuppressionRow)).all()
    assert row.account_id is None and row.expires_at is None


@pytest.mark.parametrize("values, field", [
    (suppress_values(reason="  "), "reason"),
    (suppress_values(scope="all-accounts-forever"), "scope"),
    (suppress_values(duration="3650d"), "duration"),
])
def test_a_bad_suppress_submission_is_refused_in_the_modal_and_stores_nothing(bot, values, field):
    signal_id, ts = posted(bot)
    reply = bot.submit(open_suppress(bot, ts), TRIAGER, values)
    bot.settle()
    assert reply.status == 200
    assert reply.json()["response_action"] == "errors" and field in reply.json()["errors"]
    with bot.store.session() as session:
        assert session.exec(select(sa.func.count()).select_from(SuppressionRow)).one() == 0
    assert bot.alert(signal_id).status == "new"


def test_a_suppress_submission_twice_makes_one_suppression(bot):
    signal_id, ts = posted(bot)
    view = open_suppress(bot, ts)
    second = open_suppress(bot, ts)  # a double click opened two modals
    bot.submit(view, TRIAGER, suppress_values())
    bot.settle()
    bot.submit(second, TRIAGER, suppress_values())
    bot.settle()
    with bot.store.session() as session:
        assert session.exec(select(sa.func.count()).select_from(SuppressionRow)).one() == 1
    assert len(thread(bot, ts)) == 1


def test_a_non_triager_cannot_submit_a_suppression(bot):
    signal_id, ts = posted(bot)
    view = open_suppress(bot, ts)
    reply = bot.submit(view, OUTSIDER, suppress_values())
    bot.settle()
    assert reply.json()["response_action"] == "errors"
    with bot.store.session() as session:
        assert session.exec(select(sa.func.count()).select_from(SuppressionRow)).one() == 0
    assert bot.alert(signal_id).status == "new"


# ── hostile CloudTrail values, end to end ────────────────────────────────────────────────────────────


def test_mentions_and_links_inside_cloudtrail_fields_never_reach_slack_unescaped(bot):
    identity = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/<!channel>", "accountId": ACCOUNT,
                "accessKeyId": "AKIA<@U123>", "userName": "<!channel>"}
    records = [
        cloudtrail_record(identity=identity, user_agent="<!channel>", ip="<@U123>"),
        cloudtrail_record("ListIdentities", identity=identity, user_agent="<https://evil.example|click here>",
                          region="<!here>"),
        cloudtrail_record("GetAccount", identity=identity, user_agent="curl/" + "A" * 4995, errorCode="<@U123|boss>"),
    ]
    signal_id, ts = posted(bot, *records)
    bot.click(ESCALATE, TRIAGER, CHANNEL, ts)
    bot.settle()
    bot.command("history <!channel>")
    outgoing = "\n".join(bot.slack.all_outgoing_text())
    assert re.findall(r"<(?!@UTRIAGER1>)[^<>]*>", outgoing) == []  # the only raw mention: the triager who acted
    assert "&lt;!channel&gt;" in outgoing and "&lt;https://evil.example|click here&gt;" in outgoing
    for call in bot.slack.calls_to("chat.postMessage") + bot.slack.calls_to("chat.update"):
        assert len(call["text"]) <= 40000
        for block in call.get("blocks") or []:
            assert len(json.dumps(block.get("text", ""))) < 3100
