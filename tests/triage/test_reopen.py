"""Reopen (SPEC §8): a closed or suppressed alert back to `new`, by a triager, audited; the suppression stays."""

from __future__ import annotations

from sqlmodel import select

from detection.store import SignalHistory, SuppressionRow
from tests.support.slack_harness import (
    CHANNEL,
    OUTSIDER,
    TRIAGER,
    Harness,
    cloudtrail_record,
    store_signals,
)

ESCALATE, SUPPRESS, CLOSE = "sesguard.escalate", "sesguard.suppress", "sesguard.not_an_issue"
REOPEN = "sesguard.reopen"


def posted(bot: Harness) -> tuple[str, str]:
    [signal_id] = store_signals(bot.store, cloudtrail_record())
    assert bot.post_alerts().posted == 1
    return signal_id, bot.alert(signal_id).slack_ts


def history(bot: Harness, signal_id: str) -> list[tuple[str, str, str]]:
    with bot.store.session() as session:
        rows = session.exec(select(SignalHistory).where(SignalHistory.signal_id == signal_id)
                            .order_by(SignalHistory.id))
        return [(r.actor, r.action, r.status) for r in rows]


def suppress(bot: Harness, ts: str) -> None:
    bot.click(SUPPRESS, TRIAGER, CHANNEL, ts)
    bot.settle()
    view = bot.opened_views()[-1]
    bot.submit(view, TRIAGER, {"scope": {"type": "radio_buttons", "selected_option": {"value": "account"}},
                               "duration": {"type": "radio_buttons", "selected_option": {"value": "never"}},
                               "reason": {"type": "plain_text_input", "value": "the pen-test"}})
    bot.settle()


def test_an_open_alert_has_no_reopen_button(bot):
    _, ts = posted(bot)
    assert REOPEN not in bot.buttons(CHANNEL, ts)


def test_a_closed_alert_is_reopened_to_new_with_its_buttons_back(bot):
    signal_id, ts = posted(bot)
    bot.click(CLOSE, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert bot.buttons(CHANNEL, ts)[-1] == REOPEN
    reply = bot.click(REOPEN, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert reply.status == 200
    assert bot.alert(signal_id).status == "new"
    assert history(bot, signal_id)[-1] == (TRIAGER, "reopened", "new")
    assert bot.buttons(CHANNEL, ts)[:4] == [ESCALATE, "sesguard.contact_user", SUPPRESS, CLOSE]
    assert "Status:* New" in str(bot.slack.message(CHANNEL, ts).blocks)
    assert any(f"Reopened by <@{TRIAGER}>" in m.text for m in bot.slack.replies(CHANNEL, ts))


def test_a_suppressed_alert_is_reopened_and_its_suppression_stays(bot):
    signal_id, ts = posted(bot)
    suppress(bot, ts)
    assert bot.alert(signal_id).status == "suppressed" and bot.buttons(CHANNEL, ts) == [REOPEN]
    bot.click(REOPEN, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert bot.alert(signal_id).status == "new"
    with bot.store.session() as session:
        [suppression] = session.exec(select(SuppressionRow)).all()
    assert suppression.lifted_at is None  # untouched: later signals of the identity stay out of the channel
    assert [row.id for row in bot.store.active_suppressions()] == [suppression.id]
    assert history(bot, signal_id)[-1] == (TRIAGER, "reopened", "new")


def test_a_non_triager_cannot_reopen(bot):
    signal_id, ts = posted(bot)
    bot.click(CLOSE, TRIAGER, CHANNEL, ts)
    bot.settle()
    before = history(bot, signal_id)
    bot.click(REOPEN, OUTSIDER, CHANNEL, ts)
    bot.settle()
    assert bot.alert(signal_id).status == "closed" and history(bot, signal_id) == before
    assert any("Only triagers" in note for note in bot.ephemerals(OUTSIDER))


def test_a_stale_reopen_button_on_an_open_alert_changes_nothing(bot):
    signal_id, ts = posted(bot)
    bot.click(CLOSE, TRIAGER, CHANNEL, ts)
    bot.settle()
    button = bot.button(CHANNEL, ts, REOPEN)
    bot.click(REOPEN, TRIAGER, CHANNEL, ts, button=button)
    bot.settle()
    bot.click(REOPEN, TRIAGER, CHANNEL, ts, button=button)  # a double click
    bot.settle()
    assert [h for h in history(bot, signal_id) if h[1] == "reopened"] == [(TRIAGER, "reopened", "new")]
    assert any("Nothing was changed" in note for note in bot.ephemerals(TRIAGER))
