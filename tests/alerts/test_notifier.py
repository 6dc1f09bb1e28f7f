"""The outbox against the Slack stand-in: each alert in the channel exactly once, whatever Slack does."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.alerts.notifier import post_pending
from bot.alerts.tables import DeliveryState
from bot.slack.client import slack_client
from detection.store import SignalHistory, SignalRow, SuppressionRow, utcnow
from tests.fakes.slack_api import FakeSlack, manifest_scopes
from tests.support.alerts import Alert, alert, set_post
from tests.support.misbehaving_slack import MisbehavingSlack
from tests.support.slack_harness import CHANNEL, TOKEN, cloudtrail_record, settings_for, store_signals


@pytest.fixture
def slack():
    with FakeSlack(token=TOKEN, channels={CHANNEL: ()}) as fake:
        yield fake


def _signals(store, *users: str) -> list[str]:
    return [sid for user in users for sid in store_signals(store, cloudtrail_record(user=user))]


def _row(store, signal_id: str) -> Alert:
    return alert(store, signal_id)


def _alerts_in_channel(slack: FakeSlack) -> dict[str, list[str]]:
    """signal id → ts of each alert message carrying it."""
    found: dict[str, list[str]] = {}
    for message in slack.channel_messages(CHANNEL):
        found.setdefault(message.metadata["event_payload"]["signal_id"], []).append(message.ts)
    return found


def _notify(store, slack, **overrides):
    return post_pending(store, settings_for(slack, store, **overrides), interval=0)


def test_each_pending_signal_is_posted_once_with_its_id_in_message_metadata(store, slack):
    ids = _signals(store, "alice", "bob")
    result = _notify(store, slack)
    assert (result.posted, result.failed, result.pending) == (2, 0, 0)
    posted = _alerts_in_channel(slack)
    assert sorted(posted) == sorted(ids) and all(len(ts) == 1 for ts in posted.values())
    for signal_id in ids:
        row = _row(store, signal_id)
        assert (row.slack_channel, row.slack_ts) == (CHANNEL, posted[signal_id][0]) and row.posted_at is not None
    for call in slack.calls_to("chat.postMessage"):
        assert call["unfurl_links"] is False and call["unfurl_media"] is False
        assert call["metadata"]["event_type"] == "sesguard_alert"
    again = _notify(store, slack)
    assert (again.posted, again.pending) == (0, 0) and len(slack.channel_messages(CHANNEL)) == 2
    with store.session() as session:
        assert session.exec(select(sa.func.count()).where(SignalHistory.action == "posted")).one() == 2


@pytest.mark.parametrize("retry_after, wait", [("2", 2.0), ("soon", 1.0), ("-5", 1.0), ("nan", 1.0),
                                               ("9999999", 120.0)])
def test_a_429_is_retried_after_retry_after_and_posts_once(store, slack, retry_after, wait):
    """The wait is counted through the client's injected sleep, not sat through (reliability/test_slack.py
    checks the real one at the stand-in): Slack's Retry-After, plus up to SESGUARD_RETRY_SECONDS of spread;
    one that is missing or unreadable is a second, and one beyond reason is two minutes."""
    [signal_id] = _signals(store, "alice")
    settings = settings_for(slack, store, retry_seconds=0.25)
    waits: list[float] = []
    slack.fail("chat.postMessage", "ratelimited", times=1, retry_after=retry_after)
    result = post_pending(store, settings, slack_client(settings, sleep=waits.append), interval=0)
    assert (result.posted, result.failed) == (1, 0)
    assert [c.fault for c in slack.calls if c.method == "chat.postMessage"] == ["ratelimited", None]
    assert list(_alerts_in_channel(slack)) == [signal_id]
    assert len(waits) == 1 and wait <= waits[0] <= wait + 0.25


def test_a_5xx_on_a_call_that_may_be_repeated_is_retried_after_the_retry_pause_doubling(store, slack):
    settings = settings_for(slack, store, retry_seconds=0.25)
    waits: list[float] = []
    slack.fail("conversations.history", "server_error", times=2)
    assert slack_client(settings, sleep=waits.append).conversations_history(channel=CHANNEL)["ok"]
    assert [c.fault for c in slack.calls if c.method == "conversations.history"] == ["server_error"] * 2 + [None]
    assert len(waits) == 2 and 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 0.75


@pytest.mark.parametrize("fault", ["server_error", "drop"])
def test_a_500_or_dropped_connection_is_retried_after_looking_in_the_channel(store, slack, fault):
    [signal_id] = _signals(store, "alice")
    slack.fail("chat.postMessage", fault, times=1)
    result = _notify(store, slack)
    assert (result.posted, result.found, result.failed) == (1, 0, 0)
    assert slack.methods() == ["chat.postMessage", "conversations.history", "chat.postMessage"]
    assert slack.calls_to("conversations.history")[0]["include_all_metadata"] in ("1", "true", True)
    assert _alerts_in_channel(slack) == {signal_id: [_row(store, signal_id).slack_ts]}


def test_a_post_whose_answer_was_lost_is_found_again_not_posted_twice(store, slack):
    [signal_id] = _signals(store, "alice")
    slack.fail("chat.postMessage", "lost_answer", times=1)
    result = _notify(store, slack)
    assert (result.posted, result.found, result.failed) == (0, 1, 0)
    assert _alerts_in_channel(slack) == {signal_id: [_row(store, signal_id).slack_ts]}
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_an_outage_leaves_alerts_pending_and_the_next_pass_posts_them_once(store, slack):
    ids = _signals(store, "alice", "bob")
    slack.fail("chat.postMessage", "server_error", times=3)
    result = _notify(store, slack)
    assert (result.posted, result.failed, result.pending) == (0, 1, 2)
    assert "HTTP 500" in result.errors[0]
    # The pass stopped at the first failure: the second signal was not tried against a Slack that is down.
    assert len(slack.calls_to("chat.postMessage")) == 3 and slack.channel_messages(CHANNEL) == []
    recovered = _notify(store, slack)
    assert (recovered.posted, recovered.pending) == (2, 0)
    assert sorted(_alerts_in_channel(slack)) == sorted(ids)


def test_invalid_auth_fails_the_pass_and_keeps_the_alert(store, slack):
    [signal_id] = _signals(store, "alice")
    result = _notify(store, slack, slack_bot_token="xoxb-revoked")
    assert (result.posted, result.failed, result.pending) == (0, 1, 1) and "invalid_auth" in result.errors[0]
    assert _row(store, signal_id).slack_ts is None
    assert _notify(store, slack).posted == 1


def test_a_crashed_workers_claim_lapses_and_its_post_is_found_in_the_channel(store, slack):
    [signal_id] = _signals(store, "alice")
    # A worker claimed the signal, posted it, and died before recording the ts.
    answer = slack.handle("chat.postMessage", {"channel": CHANNEL, "text": "alert", "metadata": {
        "event_type": "sesguard_alert", "event_payload": {"signal_id": signal_id}}})
    set_post(store, signal_id, claimed_by="dead-worker", attempts=1, claimed_until=utcnow() + timedelta(minutes=5))
    assert _notify(store, slack).posted == 0  # still claimed: nobody touches it
    set_post(store, signal_id, claimed_until=utcnow() - timedelta(seconds=1))
    result = _notify(store, slack)
    assert (result.posted, result.found) == (0, 1)
    assert _row(store, signal_id).slack_ts == answer["ts"] and len(slack.channel_messages(CHANNEL)) == 1


def test_two_notifiers_at_once_never_post_the_same_signal(store, slack):
    ids = _signals(store, *[f"user{n}" for n in range(12)])
    results = []
    start = threading.Barrier(2)

    def run():
        start.wait()
        results.append(_notify(store, slack))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.posted for r in results) == 12 and all(r.failed == 0 for r in results)
    posted = _alerts_in_channel(slack)
    assert sorted(posted) == sorted(ids) and all(len(ts) == 1 for ts in posted.values())


def test_a_grown_signal_gets_its_message_updated_in_place(store, slack):
    first = cloudtrail_record(user="alice")
    [signal_id] = store_signals(store, first)
    _notify(store, slack)
    ts = _row(store, signal_id).slack_ts
    later = cloudtrail_record("ListIdentities", user="alice", region="eu-west-1")
    store_signals(store, later)
    result = _notify(store, slack)
    assert (result.posted, result.updated) == (0, 1)
    [update] = slack.calls_to("chat.update")
    assert update["ts"] == ts and "eu-west-1" in str(update["blocks"]) and "ListIdentities" in str(update["blocks"])
    assert _notify(store, slack).updated == 0


def test_a_suppression_made_while_an_alert_waited_keeps_it_out_of_the_channel(store, slack):
    [waiting] = _signals(store, "alice")
    with store.session() as session:  # e.g. from an alert of the same identity in another account
        session.add(SuppressionRow(identity=_row(store, waiting).identity, author="UTRIAGER1", reason="pen-test"))
        session.commit()
    result = _notify(store, slack)
    assert (result.posted, result.suppressed, result.pending) == (0, 1, 0)
    assert _row(store, waiting).status == "suppressed" and slack.calls_to("chat.postMessage") == []


def test_a_bot_not_invited_to_the_channel_keeps_every_alert_pending_until_it_is(store):
    with FakeSlack(token=TOKEN) as slack:
        slack.add_channel(CHANNEL, bot=False)
        ids = _signals(store, "alice", "bob")
        result = _notify(store, slack)
        assert (result.posted, result.failed, result.pending) == (0, 1, 2) and "not_in_channel" in result.errors[0]
        assert len(slack.calls_to("chat.postMessage")) == 1  # the pass stopped: the next post would fail alike
        slack.invite_bot(CHANNEL)
        assert _notify(store, slack).posted == 2 and sorted(_alerts_in_channel(slack)) == sorted(ids)


def test_without_the_history_scope_a_failed_post_is_posted_again_rather_than_lost(store):
    with FakeSlack(token=TOKEN, channels={CHANNEL: ()}, scopes=manifest_scopes() - {"channels:history"}) as slack:
        [signal_id] = _signals(store, "alice")
        slack.fail("chat.postMessage", "server_error")
        result = _notify(store, slack)
        assert (result.posted, result.failed) == (1, 0)
        assert slack.errors_of("conversations.history") == ["missing_scope"]
        assert _alerts_in_channel(slack) == {signal_id: [_row(store, signal_id).slack_ts]}


def test_a_signal_stored_as_suppressed_is_never_posted_even_after_its_suppression_is_lifted(store, slack):
    record = cloudtrail_record(user="alice")
    with store.session() as session:
        suppression = SuppressionRow(identity=record["userIdentity"]["arn"], author="UTRIAGER1", reason="pen-test")
        session.add(suppression)
        session.commit()
    [signal_id] = store_signals(store, record)
    assert _row(store, signal_id).status == "suppressed"
    with store.session() as session:  # lifting covers later signals no more; this one stays suppressed
        session.execute(sa.update(SuppressionRow).values(lifted_at=utcnow(), lifted_by="UTRIAGER1"))
        session.commit()
    result = _notify(store, slack)
    assert (result.posted, result.suppressed, result.pending) == (0, 0, 0)
    assert slack.calls_to("chat.postMessage") == [] and _row(store, signal_id).slack_ts is None


# ── one bad alert is never a wall in front of the others ────────────────────────────────────────────


def _damage(store, signal_id: str) -> None:
    """A row no builder can render: a list column holding a number (a damaged or hand-edited store)."""
    with store.session() as session:
        session.execute(sa.update(SignalRow).where(SignalRow.signal_id == signal_id).values(regions=5))
        session.commit()


def _make_due(store, signal_id: str) -> None:
    """The set-aside alert's backoff has run out."""
    set_post(store, signal_id, retry_at=utcnow() - timedelta(seconds=1))


def _history(store, signal_id: str) -> list[tuple[str, str]]:
    with store.session() as session:
        rows = session.exec(select(SignalHistory).where(SignalHistory.signal_id == signal_id)
                            .order_by(SignalHistory.id)).all()
    return [(row.action, row.detail) for row in rows]


def test_an_unrenderable_alert_is_set_aside_with_backoff_and_the_alert_behind_it_is_posted(store, slack):
    damaged, fine = _signals(store, "alice", "bob")  # alice's is first in the outbox
    _damage(store, damaged)
    before = utcnow()
    result = _notify(store, slack)
    assert (result.posted, result.set_aside, result.failed, result.pending) == (1, 1, 1, 1)
    assert list(_alerts_in_channel(slack)) == [fine]
    row = _row(store, damaged)
    assert row.failures == 1 and "cannot be rendered: TypeError" in row.error
    assert timedelta(seconds=299) < row.retry_at - before < timedelta(seconds=310)  # one poll interval
    [(action, detail)] = [step for step in _history(store, damaged) if step[0] == "set aside"]
    assert "TypeError" in detail and "next attempt after" in detail

    assert _notify(store, slack).failed == 0  # not due yet: left alone, nothing else held up
    _make_due(store, damaged)
    before = utcnow()
    assert _notify(store, slack).set_aside == 1
    row = _row(store, damaged)
    assert row.failures == 2 and timedelta(seconds=599) < row.retry_at - before < timedelta(seconds=610)

    with store.session() as session:  # repaired: posted at its next attempt, the set-aside state cleared
        session.execute(sa.update(SignalRow).where(SignalRow.signal_id == damaged).values(regions=["us-east-1"]))
        session.commit()
    _make_due(store, damaged)
    assert _notify(store, slack).posted == 1
    row = _row(store, damaged)
    assert (row.failures, row.error, row.retry_at) == (0, None, None) and row.slack_ts
    assert sorted(_alerts_in_channel(slack)) == sorted([damaged, fine])


def test_an_alert_with_eight_forged_400_character_access_keys_is_posted_cut_to_limits(store):
    forged = []
    for n in range(8):
        record = cloudtrail_record(user="forger")
        record["userIdentity"]["accessKeyId"] = f"AKIA{n}" + "X" * 395
        forged.append(record)
    # The stand-in refuses what Slack refuses: invalid_blocks, msg_too_long.
    with MisbehavingSlack(token=TOKEN, channels={CHANNEL: ()}) as strict:
        [signal_id] = store_signals(store, *forged)
        [behind] = _signals(store, "bob")
        result = post_pending(store, settings_for(strict, store), interval=0)
        assert (result.posted, result.failed) == (2, 0) and strict.refused == []
        shown = str(strict.message(CHANNEL, _row(store, signal_id).slack_ts).blocks)
        assert "long-term access key AKIA0XXX" in shown and "… 4 more" in shown
        assert _row(store, behind).slack_ts is not None


@pytest.mark.parametrize("refusal", ["invalid_blocks", "msg_too_long", "invalid_metadata_format"])
def test_a_message_slack_refuses_is_set_aside_and_does_not_stop_the_next(store, slack, refusal):
    refused, fine = _signals(store, "alice", "bob")
    slack.fail("chat.postMessage", refusal, times=1)
    result = _notify(store, slack)
    assert (result.posted, result.set_aside, result.pending) == (1, 1, 1)
    assert list(_alerts_in_channel(slack)) == [fine]
    assert f"HTTP 200 {refusal}" == _row(store, refused).error
    _make_due(store, refused)
    assert _notify(store, slack).posted == 1
    assert sorted(_alerts_in_channel(slack)) == sorted([refused, fine])
    assert [action for action, _ in _history(store, refused)] == ["detected", "set aside", "posted"]


def test_a_refused_update_of_a_grown_alert_is_set_aside_too(store, slack):
    [signal_id] = store_signals(store, cloudtrail_record(user="alice"))
    _notify(store, slack)
    store_signals(store, cloudtrail_record("ListIdentities", user="alice"))
    slack.fail("chat.update", "invalid_blocks", times=1)
    result = _notify(store, slack)
    assert (result.updated, result.set_aside) == (0, 1) and _row(store, signal_id).retry_at is not None
    _make_due(store, signal_id)
    assert _notify(store, slack).updated == 1


@pytest.mark.parametrize("error", ["token_revoked", "channel_not_found", "account_inactive"])
def test_a_workspace_wide_refusal_stops_the_pass_and_sets_nothing_aside(store, slack, error):
    ids = _signals(store, "alice", "bob")
    slack.fail("chat.postMessage", error, times=10)
    result = _notify(store, slack)
    assert (result.posted, result.failed, result.set_aside, result.pending) == (0, 1, 0, 2)
    assert error in str(result.stopped_by) and len(slack.calls_to("chat.postMessage")) == 1
    assert all(_row(store, signal_id).retry_at is None for signal_id in ids)


# ── what each pass says about delivery, for /healthz in another process ──────────────────────────────


def _delivery(store):
    with store.session() as session:
        return session.get(DeliveryState, CHANNEL)


def test_a_revoked_token_is_recorded_as_failing_delivery_until_a_post_goes_through(store, slack):
    _signals(store, "alice")
    slack.fail("chat.postMessage", "token_revoked", times=1)
    _notify(store, slack)
    state = _delivery(store)
    assert (state.stopped_by, state.stopped_by_transient) == ("HTTP 200 token_revoked", False)
    _notify(store, slack)
    state = _delivery(store)
    assert state.stopped_by is None


def test_slack_down_is_recorded_as_transient(store, slack):
    _signals(store, "alice")
    slack.fail("chat.postMessage", "server_error", times=3)
    _notify(store, slack)
    assert (_delivery(store).stopped_by, _delivery(store).stopped_by_transient) == ("HTTP 500 fatal_error", True)


def test_a_pass_that_tried_nothing_while_alerts_wait_records_nothing(store, slack):
    [signal_id] = _signals(store, "alice")
    slack.fail("chat.postMessage", "token_revoked", times=1)
    _notify(store, slack)
    recorded = _delivery(store).last_pass_at
    # another process is posting it
    set_post(store, signal_id, claimed_by="other", claimed_until=utcnow() + timedelta(minutes=5))
    _notify(store, slack)
    assert _delivery(store).last_pass_at == recorded and _delivery(store).stopped_by == "HTTP 200 token_revoked"
