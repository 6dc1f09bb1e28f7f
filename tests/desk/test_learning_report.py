"""The learning report (SPEC §8): what an account's learning period learned silently, posted once in the
alert channel when it ends (two workers, a restart, a lost answer), after `scan --db` too; and
`/sesguard learned`. On SQLite and PostgreSQL, through the Slack stand-in."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from sqlmodel import select

from bot.cli.commands import main
from bot.desk.learning.report import LearningReport, post_reports
from bot.worker.tables import PollState
from detection.baseline import Tuning
from detection.record import to_call
from detection.scan import detect
from detection.store import LearnedIdentity, Store, utcnow
from tests.support import records as r
from tests.support.slack_harness import CHANNEL, TOKEN, Harness, answer_text

ACCOUNT = r.ACCOUNT
TUNING = Tuning(learning=timedelta(days=7))
REPORT = "sesguard_learning_report"


def ago(days: float) -> str:
    return (utcnow() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def learning_history(account: str = ACCOUNT, started_days_ago: float = 10) -> list[dict]:
    """Observed since `started_days_ago`: alice's long-term key and bob's console calls while learning, then
    mallory after learning (an alert, not learned)."""
    start = started_days_ago
    return [
        r.record(r.iam_user("alice", account), "GetSendQuota", time=ago(start)),
        r.record(r.iam_user("alice", account), "ListIdentities", time=ago(start - 0.01)),
        r.record(r.iam_user("alice", account), "GetSendQuota", time=ago(start - 1)),
        r.console_record(r.iam_user("bob", account), "GetAccount", time=ago(start - 2)),
        r.record(r.iam_user("mallory", account), "ListIdentities", time=ago(start - 8)),
    ]


def detected(store: Store, records: list[dict]) -> list:
    signals, _ = detect([to_call(rec) for rec in records], TUNING, store)
    return signals


@pytest.fixture
def harness_store(store):
    return store


@pytest.fixture
def harness_options():
    return {"learning_days": 7}


def client(bot: Harness) -> WebClient:
    return WebClient(token=TOKEN, base_url=bot.slack.api_url, retry_handlers=[])


def reports(bot: Harness) -> list:
    return [m for m in bot.slack.channel_messages(CHANNEL) if (m.metadata or {}).get("event_type") == REPORT]


def test_the_store_remembers_what_was_learned_silently_with_its_calls(store):
    [alert] = detected(store, learning_history())
    assert alert.identity.endswith("user/mallory")
    with store.session() as session:
        learned = {row.identity.rsplit("/", 1)[1]: row for row in session.exec(select(LearnedIdentity))}
    assert set(learned) == {"alice", "bob"}  # mallory raised a signal: not learned silently
    assert learned["alice"].calls == {"GetSendQuota": 2, "ListIdentities": 1} and learned["alice"].event_count == 3
    assert learned["alice"].as_signal().severity == "high" and learned["bob"].as_signal().severity == "low"


def test_calls_learned_in_several_batches_add_up(store):
    history = learning_history()
    for record in history[:3]:
        detected(store, [record])
    with store.session() as session:
        [alice] = session.exec(select(LearnedIdentity)).all()
    assert alice.calls == {"GetSendQuota": 2, "ListIdentities": 1} and alice.event_count == 3


def test_the_report_is_posted_once_across_two_workers_and_a_restart(bot):
    detected(bot.store, learning_history())
    barrier = threading.Barrier(2)
    results = []

    def worker(name: str) -> None:
        barrier.wait()
        results.append(post_reports(bot.store, bot.settings, client(bot), name, interval=0))

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("worker-a", "worker-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    restarted = Store(bot.store.url)
    again = post_reports(restarted, bot.settings, client(bot), "worker-a-restarted", interval=0)
    restarted.engine.dispose()
    assert sorted(len(result.posted) for result in results) == [0, 1] and again.posted == []
    [report] = reports(bot)
    shown = str(report.blocks)
    assert ACCOUNT in shown and "user/alice" in shown and "user/bob" in shown and "mallory" not in shown
    assert "would have been high" in shown and "GetSendQuota ×2" in shown
    assert shown.index("user/alice") < shown.index("user/bob")  # the high one first
    assert "long-term access key" in shown
    with bot.store.session() as session:
        [row] = session.exec(select(LearningReport)).all()
    assert (row.slack_ts, row.identities) == (report.ts, 2)


def test_no_report_while_the_account_is_still_learning_or_its_backfill_is_under_way(bot):
    detected(bot.store, learning_history(started_days_ago=3)[:4])
    assert post_reports(bot.store, bot.settings, client(bot), "w", interval=0).posted == []
    detected(bot.store, learning_history(account=r.OTHER_ACCOUNT)[:4])
    with bot.store.session() as session:  # a region of the other account awaits its first backfill
        session.add(PollState(source="lookup", account_id=r.OTHER_ACCOUNT, region="eu-west-1", consecutive_failures=0))
        session.commit()
    assert post_reports(bot.store, bot.settings, client(bot), "w", interval=0).posted == []
    with bot.store.session() as session:
        row = session.get(PollState, ("lookup", r.OTHER_ACCOUNT, "eu-west-1"))
        row.watermark = utcnow()
        session.add(row)
        session.commit()
    assert post_reports(bot.store, bot.settings, client(bot), "w", interval=0).posted == [r.OTHER_ACCOUNT]


def test_a_report_whose_answer_was_lost_is_found_in_the_channel(bot):
    detected(bot.store, learning_history())
    bot.slack.fail("chat.postMessage", "lost_answer")
    assert post_reports(bot.store, bot.settings, client(bot), "w", interval=0).failed == 1
    with bot.store.session() as session:
        row = session.exec(select(LearningReport)).one()
        row.claimed_until = utcnow() - timedelta(seconds=1)  # the process that tried died
        session.add(row)
        session.commit()
    assert post_reports(bot.store, bot.settings, client(bot), "w2", interval=0).found == 1
    assert len(reports(bot)) == 1


def test_an_account_that_learned_nothing_gets_no_message(bot):
    bot.store.set_observed_since(ACCOUNT, utcnow() - timedelta(days=10))  # observed, nobody called while learning
    result = post_reports(bot.store, bot.settings, client(bot), "w", interval=0)
    assert result.posted == [] and reports(bot) == []


def test_scan_with_a_store_is_reported_by_the_worker(bot, tmp_path, capsys):
    trail = r.write(tmp_path / "trail.json", learning_history())
    assert main(["scan", str(trail), "--db", bot.store.url, "--learning-days", "7"]) == 0
    capsys.readouterr()
    assert post_reports(bot.store, bot.settings, client(bot), "w", interval=0).posted == [ACCOUNT]
    assert len(reports(bot)) == 1


def test_sesguard_learned_shows_the_report_again(bot):
    detected(bot.store, learning_history())
    answer = answer_text(bot.command(f"learned {ACCOUNT}"))
    assert "user/alice" in answer and "would have been high" in answer and "user/bob" in answer
    assert ACCOUNT in answer_text(bot.command("learned")) and "2 identities" in answer_text(bot.command("learned"))
    assert "Usage" in answer_text(bot.command("learned <!channel>"))
    assert "Nothing was learned" in answer_text(bot.command("learned 999999999999"))


def test_sesguard_learned_says_ended_for_a_learning_period_in_the_past_and_ends_for_one_to_come(bot):
    detected(bot.store, learning_history())  # learning ended days ago
    detected(bot.store, learning_history(account=r.OTHER_ACCOUNT, started_days_ago=3)[:4])  # still learning
    listing = bot.command("learned")["text"]
    [past] = [line for line in listing.splitlines() if ACCOUNT in line]
    [future] = [line for line in listing.splitlines() if r.OTHER_ACCOUNT in line]
    assert "learning ended " in past and "learning ends " not in past
    assert "learning ends " in future and "ended" not in future
    assert "learning ended at" in answer_text(bot.command(f"learned {ACCOUNT}"))
    assert "learning ends at" in answer_text(bot.command(f"learned {r.OTHER_ACCOUNT}"))
