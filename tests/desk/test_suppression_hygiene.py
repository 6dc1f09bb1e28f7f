"""Suppression hygiene (SPEC §8): hit counts, the reminder DM a day before expiry (once, across workers and
restarts), its Extend button, and suppressions with no expiry; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk import WebClient
from sqlmodel import select

from bot.desk.reminders import enqueue_due, remind
from bot.triage.suppressions.tables import SuppressionReminder
from detection.store import AuditEntry, Store, SuppressionRow, utcnow
from tests.support.slack_harness import (
    ACCOUNT,
    TOKEN,
    TRIAGER,
    Harness,
    answer_text,
    cloudtrail_record,
    store_signals,
)

EXTEND = "sesguard.extend_suppression"
IDENTITY = f"arn:aws:iam::{ACCOUNT}:user/alice"


@pytest.fixture
def harness_store(store):
    return store


def client(bot: Harness) -> WebClient:
    return WebClient(token=TOKEN, base_url=bot.slack.api_url, retry_handlers=[])


def suppression(bot: Harness, days: float | None, age: timedelta, identity: str = IDENTITY,
                account: str | None = ACCOUNT) -> int:
    created = utcnow() - age
    with bot.store.session() as session:
        row = SuppressionRow(identity=identity, account_id=account, author=TRIAGER, reason="the quarterly pen-test",
                             created_at=created, duration_days=days,
                             expires_at=created + timedelta(days=days) if days is not None else None)
        session.add(row)
        session.commit()
        return row.id


def reminders_sent(bot: Harness) -> list:
    return [m for m in bot.slack.messages if m.channel.startswith("D") and (m.metadata or {}).get("event_type")
            == "sesguard_suppression_reminder"]


def test_suppressions_show_how_many_signals_each_covered(bot):
    kept = suppression(bot, 30, timedelta(days=1), account=None)  # this identity in every account
    forever = suppression(bot, None, timedelta(days=1), identity=f"arn:aws:iam::{ACCOUNT}:user/ci")
    store_signals(bot.store, cloudtrail_record(user="alice"),
                  dict(cloudtrail_record(user="alice"), recipientAccountId="444455556666"),
                  cloudtrail_record(user="ci"))
    answer = answer_text(bot.command("suppressions"))
    assert f"*#{kept}* {IDENTITY}" in answer and "covered 2 signals" in answer
    assert f"*#{forever}*" in answer and "no expiry; covered 1 signal;" in answer


def test_the_author_is_reminded_once_a_day_before_expiry_across_two_workers_and_a_restart(bot):
    soon = suppression(bot, 7, timedelta(days=6, hours=12))  # expires in 12 hours
    suppression(bot, 7, timedelta(days=2))  # five days left: not yet
    suppression(bot, None, timedelta(days=400))  # no expiry: never
    first = remind(bot.store, client(bot), "worker-a")
    second = remind(bot.store, client(bot), "worker-b")
    restarted = Store(bot.store.url)
    third = remind(restarted, client(bot), "worker-a-after-restart")
    restarted.engine.dispose()
    assert (first.sent, second.sent, third.sent) == (1, 0, 0)
    [dm] = reminders_sent(bot)
    assert dm.channel == "D" + TRIAGER.lstrip("U")
    assert f"#{soon}" in str(dm.blocks) and "expires at" in str(dm.blocks)
    [button] = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == EXTEND and button["text"]["text"] == "Extend by 7 days"


def test_a_reminder_whose_answer_was_lost_is_found_in_the_dm_not_sent_again(bot):
    suppression(bot, 7, timedelta(days=6, hours=12))
    bot.slack.fail("chat.postMessage", "lost_answer")
    assert remind(bot.store, client(bot), "worker-a").failed == 1
    with bot.store.session() as session:  # the claim of the attempt that died lapses
        for row in session.exec(select(SuppressionReminder)):
            row.claimed_until = utcnow() - timedelta(seconds=1)
            session.add(row)
        session.commit()
    again = remind(bot.store, client(bot), "worker-b")
    assert (again.sent, again.found) == (0, 1)
    assert len(reminders_sent(bot)) == 1


def test_extend_adds_the_original_duration_once_and_is_audited(bot):
    suppression_id = suppression(bot, 7, timedelta(days=6, hours=12))
    remind(bot.store, client(bot), "worker-a")
    [dm] = reminders_sent(bot)
    with bot.store.session() as session:
        before = session.get(SuppressionRow, suppression_id).expires_at
    button = bot.button(dm.channel, dm.ts, EXTEND)
    assert bot.click(EXTEND, TRIAGER, dm.channel, dm.ts).status == 200
    bot.settle()
    with bot.store.session() as session:
        after = session.get(SuppressionRow, suppression_id).expires_at
        [audit] = session.exec(select(AuditEntry).where(AuditEntry.action == "suppression extended")).all()
    assert after - before == timedelta(days=7) and audit.actor == TRIAGER
    assert "was extended by" in str(bot.slack.message(dm.channel, dm.ts).blocks)
    assert not any(b["type"] == "actions" for b in bot.slack.message(dm.channel, dm.ts).blocks)
    bot.click(EXTEND, TRIAGER, dm.channel, dm.ts, button=button)  # the old button again
    bot.settle()
    with bot.store.session() as session:
        assert session.get(SuppressionRow, suppression_id).expires_at == after
    assert any("extended already" in note for note in bot.ephemerals(TRIAGER))
    assert remind(bot.store, client(bot), "worker-a").sent == 0  # a week and a half left: no new reminder


def test_a_one_day_suppression_is_reminded_half_a_day_before(bot):
    suppression(bot, 1, timedelta(hours=11))
    assert remind(bot.store, client(bot), "worker-a").sent == 0
    suppression(bot, 1, timedelta(hours=13))
    assert remind(bot.store, client(bot), "worker-a").sent == 1


def test_a_suppression_lifted_before_its_reminder_is_not_reminded(bot):
    suppression_id = suppression(bot, 7, timedelta(days=6, hours=12))
    enqueue_due(bot.store)
    with bot.store.session() as session:
        assert len(session.exec(select(SuppressionReminder)).all()) == 1
    bot.command(f"unsuppress {suppression_id}")
    result = remind(bot.store, client(bot), "worker-a")
    assert (result.sent, result.dropped) == (0, 1) and reminders_sent(bot) == []


def test_only_triagers_may_extend(bot):
    suppression_id = suppression(bot, 7, timedelta(days=6, hours=12))
    remind(bot.store, client(bot), "worker-a")
    [dm] = reminders_sent(bot)
    with bot.store.session() as session:
        before = session.get(SuppressionRow, suppression_id).expires_at
    bot.click(EXTEND, "UOUTSIDER", dm.channel, dm.ts)
    bot.settle()
    with bot.store.session() as session:
        assert session.get(SuppressionRow, suppression_id).expires_at == before
