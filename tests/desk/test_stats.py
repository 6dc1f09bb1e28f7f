"""The triage figures (SPEC §8) against a hand-made history, on SQLite and PostgreSQL: `/sesguard stats`
through the signed endpoint, and the daily digest at its hour, once across workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient

from bot.contact.tables import Contact
from bot.desk.digest.daily import post_digest
from bot.desk.digest.figures import figures
from detection.store import SignalHistory, SignalRow, Store, SuppressionRow
from tests.support.slack_harness import ACCOUNT, CHANNEL, TOKEN, TRIAGER, Harness, answer_text

NOW = datetime(2026, 3, 10, 9, 0, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def signal(session, name: str, severity: str, status: str, created: datetime, first_action: float | None,
           suppression_id: int | None = None) -> None:
    """A signal raised at `created`, posted 5 s later, first acted on by a person `first_action` s after."""
    signal_id = f"sg-{name}"
    session.add(SignalRow(signal_id=signal_id, account_id=ACCOUNT, identity=f"arn:aws:iam::{ACCOUNT}:user/{name}",
                          identity_type="IAMUser", arn=f"arn:aws:iam::{ACCOUNT}:user/{name}", first_seen=created,
                          last_seen=created, severity=severity, status=status, created_at=created, updated_at=created,
                          suppression_id=suppression_id))
    session.add(SignalHistory(signal_id=signal_id, actor="sesguard", action="detected", status="new", at=created))
    session.add(SignalHistory(signal_id=signal_id, actor="sesguard", action="posted", status="new",
                              at=created + timedelta(seconds=5)))
    if first_action is not None:
        at = created + timedelta(seconds=first_action)
        session.add(SignalHistory(signal_id=signal_id, actor=TRIAGER, action="some step", status=status, at=at))
        session.add(SignalHistory(signal_id=signal_id, actor=TRIAGER, action="a later step", status=status,
                                  at=at + timedelta(hours=1)))


def contact(session, signal_id: str, answer: str | None, asked: datetime) -> None:
    session.add(Contact(signal_id=signal_id, slack_user_id="UALICE001", asked_by=TRIAGER, asked_at=asked,
                        deadline=asked + timedelta(hours=2), answer=answer))


def hand_made_history(store: Store) -> None:
    """Seven signals in the last day (five acted on after 60, 120, 300, 600, 1,200 s), one older."""
    base = NOW - timedelta(hours=20)
    with store.session() as session:
        busy = SuppressionRow(identity="arn:aws:iam::111122223333:user/scanner", author=TRIAGER, reason="pen-test",
                              created_at=base)
        old = SuppressionRow(identity="arn:aws:iam::111122223333:user/old", author=TRIAGER, reason="x",
                             created_at=base - 3 * DAY)
        session.add_all([busy, old])
        session.flush()
        signal(session, "s1", "high", "closed", base, 60)
        signal(session, "s2", "medium", "escalated", base + timedelta(hours=1), 120)
        signal(session, "s3", "low", "suppressed", base + timedelta(hours=2), 300, busy.id)
        signal(session, "s4", "high", "new", base + timedelta(hours=3), None)
        signal(session, "s5", "critical", "confirmed", base + timedelta(hours=4), 600)
        signal(session, "s6", "medium", "suppressed", base + timedelta(hours=5), None, busy.id)
        signal(session, "s7", "low", "closed", base + timedelta(hours=6), 1200)
        signal(session, "s0", "high", "closed", NOW - 3 * DAY, 5, old.id)  # outside the last day
        signal(session, "s9", "medium", "escalated", NOW - 3 * DAY, 7)  # still open, raised earlier
        for answer in ("yes", "no", "timeout", "undelivered", None):
            contact(session, "sg-s5", answer, base + timedelta(hours=4))
        contact(session, "sg-s0", "timeout", NOW - 3 * DAY)  # outside
        session.commit()


def test_the_figures_of_a_hand_made_day(store):
    hand_made_history(store)
    day = figures(store, 1, now=NOW)
    assert day.signals == 7
    assert day.by_severity == {"critical": 1, "high": 2, "medium": 2, "low": 2}
    assert day.by_outcome == {"closed": 2, "escalated": 1, "suppressed": 2, "new": 1, "confirmed": 1}
    assert day.open_now == 4  # s2, s4, s5 and the older s9
    assert day.acted_on == 5
    assert day.median_seconds == pytest.approx(300, abs=0.01)  # nearest rank ⌈5·0.5⌉ = 3rd of 60 120 300 600 1200
    assert day.p90_seconds == pytest.approx(1200, abs=0.01)  # ⌈5·0.9⌉ = 5th
    assert (day.answered, day.timed_out, day.waiting, day.undelivered) == (2, 1, 1, 1)
    assert day.answer_rate == pytest.approx(2 / 3)
    [(_, identity, covered)] = day.top_suppressions
    assert identity.endswith("user/scanner") and covered == 2


def test_a_longer_period_takes_in_the_older_signals_and_an_even_count(store):
    hand_made_history(store)
    week = figures(store, 7, now=NOW)
    assert week.signals == 9 and week.acted_on == 7
    # 5 7 60 120 300 600 1200: the median is the 4th, the 90th percentile the ⌈6.3⌉ = 7th
    assert week.median_seconds == pytest.approx(120, abs=0.01) and week.p90_seconds == pytest.approx(1200, abs=0.01)
    assert [covered for _, _, covered in week.top_suppressions] == [2, 1]
    empty = figures(store, 1, now=NOW - 10 * DAY)
    assert (empty.signals, empty.acted_on, empty.median_seconds, empty.answer_rate) == (0, 0, None, None)


@pytest.fixture
def harness_store(store):
    return store


@pytest.fixture
def harness_options():
    return {"digest_hour": 9}


def test_sesguard_stats_answers_the_figures(bot):
    hand_made_history(bot.store)
    answer = answer_text(bot.command("stats 3650"))
    assert "*Signals:* 9" in answer and "*Alerts open now:* 4" in answer
    assert "median 2.0 min" in answer and "90th percentile 20.0 min" in answer
    for bad in ("stats x", "stats 0", "stats -1", "stats 1 2", "stats １"):
        assert "Usage" in answer_text(bot.command(bad))


def test_the_digest_is_posted_at_its_hour_once_a_day_across_workers(bot):
    hand_made_history(bot.store)
    client = WebClient(token=TOKEN, base_url=bot.slack.api_url, retry_handlers=[])
    assert post_digest(bot.store, bot.settings, client, "worker-a", now=NOW.replace(hour=8, minute=59)) is None
    ts = post_digest(bot.store, bot.settings, client, "worker-a", now=NOW, interval=0)
    assert ts is not None
    assert post_digest(bot.store, bot.settings, client, "worker-b", now=NOW + timedelta(minutes=1), interval=0) is None
    restarted = Store(bot.store.url)
    assert post_digest(restarted, bot.settings, client, "worker-a", now=NOW + timedelta(hours=5), interval=0) is None
    restarted.engine.dispose()
    [digest] = [m for m in bot.slack.channel_messages(CHANNEL)
                if (m.metadata or {}).get("event_type") == "sesguard_digest"]
    shown = str(digest.blocks)
    assert digest.ts == ts and "daily digest" in shown
    assert "*Signals:* 7 (1 critical, 2 high, 2 medium, 2 low)" in shown
    assert "median 5.0 min, 90th percentile 20.0 min (over 5 alerts acted on)" in shown
    assert "*Contact answer rate:* 67%" in shown and "user/scanner (2)" in shown
    tomorrow = post_digest(bot.store, bot.settings, client, "worker-b", now=NOW + DAY, interval=0)
    assert tomorrow is not None and tomorrow != ts


def test_without_a_digest_hour_there_is_no_digest(store):
    with Harness(store) as bot:
        client = WebClient(token=TOKEN, base_url=bot.slack.api_url, retry_handlers=[])
        assert post_digest(bot.store, bot.settings, client, "w", now=NOW, interval=0) is None
        assert bot.slack.channel_messages(CHANNEL) == []
