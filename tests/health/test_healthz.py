"""`sesguard serve`'s `GET /healthz` (SPEC §2): 200, or 503 when polling or delivery fails; a JSON summary of
status and counts only. Account IDs, ARNs and error text are for triagers, in `/sesguard status`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.worker.tables import PollState
from detection.store import SignalRow, utcnow
from tests.support.slack_harness import ACCOUNT, Harness, cloudtrail_record, store_signals
from tests.support.slack_signing import get

POLL_SECONDS = 300
FAILING_AFTER = timedelta(seconds=3 * POLL_SECONDS)  # three poll intervals without success
SUMMARY_KEYS = {"ok", "checked_at", "sources", "failing_sources", "pending_alerts", "oldest_pending_seconds",
                "alerts_set_aside", "delivery_failing"}


@pytest.fixture
def harness_options():
    return {"poll_seconds": POLL_SECONDS}


def healthz(bot: Harness) -> tuple[int, dict, str]:
    reply = get(f"{bot.base}/healthz")
    return reply.status, reply.json(), reply.body.decode()


def store_waiting_alert(bot: Harness, user: str, waited: timedelta) -> str:
    """A signal stored `waited` ago and not posted since."""
    [signal_id] = store_signals(bot.store, cloudtrail_record(user=user))
    with bot.store.session() as session:
        row = session.get(SignalRow, signal_id)
        row.created_at = utcnow() - waited
        session.add(row)
        session.commit()
    return signal_id


def test_healthz_says_status_and_counts_and_never_which_account_arn_or_error(bot):
    with bot.store.session() as session:
        for region, failures in (("us-east-1", 4), ("eu-west-1", 0)):
            session.add(PollState(
                source="lookup", account_id=ACCOUNT, region=region, consecutive_failures=failures,
                last_success_at=utcnow() - (timedelta(hours=2) if failures else timedelta(minutes=1)),
                last_error=f"AccessDenied: arn:aws:sts::{ACCOUNT}:assumed-role/sesguard-reader/poll is not authorized",
                last_error_at=utcnow()))
        session.commit()
    store_waiting_alert(bot, "mallory", timedelta(minutes=1))
    status, summary, body = healthz(bot)
    assert status == 503
    assert set(summary) == SUMMARY_KEYS
    assert (summary["ok"], summary["sources"], summary["failing_sources"]) == (False, 2, 1)
    assert (summary["pending_alerts"], summary["delivery_failing"]) == (1, False)
    assert ACCOUNT not in body and "arn:" not in body and "AccessDenied" not in body and "mallory" not in body
    # the triagers' view names them
    answer = bot.command("status")["text"]
    assert f"{ACCOUNT}/us-east-1" in answer and "AccessDenied" in answer


def test_healthz_turns_503_when_alerts_wait_and_nothing_reaches_slack(bot):
    store_waiting_alert(bot, "mallory", FAILING_AFTER - timedelta(minutes=1))
    assert healthz(bot)[0] == 200  # waiting, but not for long yet
    store_waiting_alert(bot, "oscar", FAILING_AFTER + timedelta(minutes=1))  # e.g. no worker is running
    status, summary, _ = healthz(bot)
    assert (status, summary["delivery_failing"], summary["pending_alerts"]) == (503, True, 2)
    assert "delivery to Slack is failing" in bot.command("status")["text"]
    assert bot.post_alerts().posted == 2
    status, summary, _ = healthz(bot)
    assert (status, summary["ok"], summary["pending_alerts"]) == (200, True, 0)


def test_a_backlog_being_posted_at_slacks_pace_is_not_a_failure(bot):
    store_waiting_alert(bot, "mallory", timedelta(minutes=1))
    assert bot.post_alerts().posted == 1  # Slack took a post a moment ago
    store_waiting_alert(bot, "oscar", FAILING_AFTER + timedelta(minutes=1))
    status, summary, _ = healthz(bot)
    assert (status, summary["delivery_failing"], summary["pending_alerts"]) == (200, False, 1)
