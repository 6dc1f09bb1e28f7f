"""`/sesguard` through the signed HTTP endpoint: each sub-command, answered ephemerally via the response URL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.alerts.delivery import record_pass
from bot.contact.tables import IdentityMapping
from bot.triage.changes import suppress
from bot.worker.tables import PollState
from detection.store import AuditEntry, SuppressionRow, utcnow
from tests.support.alerts import set_post
from tests.support.slack_harness import (
    ACCOUNT,
    CHANNEL,
    OUTSIDER,
    Harness,
    answer_text,
    cloudtrail_record,
    store_signals,
)

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"


def alice_calls(bot: Harness) -> str:
    [signal_id] = store_signals(bot.store, cloudtrail_record("GetSendQuota"), cloudtrail_record("ListIdentities"),
                                cloudtrail_record("ListIdentities", ip="198.51.100.9", region="eu-west-1"))
    return signal_id


def _suppression(bot: Harness, signal_id: str, reason: str = "pen-test SEC-142") -> int:
    change = suppress(bot.store, signal_id, "UTRIAGER1", "account", "7d", reason)
    return change.signal.suppression_id


@pytest.mark.parametrize("text", ["", "help", "HELP", "frobnicate now", "<!channel>"])
def test_help_and_unknown_input_get_the_help_text(bot, text):
    answer = bot.command(text)
    assert answer["response_type"] == "ephemeral"
    body = answer_text(answer)
    if text.split()[:1] in ([], ["help"], ["HELP"]):
        assert "Unknown" not in body
    for sub in ("history", "suppressions", "unsuppress", "map", "status", "help"):
        assert f"/sesguard {sub}" in body
    assert "<!channel>" not in body and re.findall(r"<[^@][^<>]*>", body) == []


def test_a_non_triager_gets_only_the_help(bot):
    alice_calls(bot)
    for text in ("history alice", "suppressions", "unsuppress 1", f"map {ALICE_ARN} <@UX1234567>", "status"):
        answer = bot.command(text, user=OUTSIDER)
        assert "Only triagers" in answer["text"], text
    with bot.store.session() as session:
        assert session.exec(select(IdentityMapping)).all() == []
    assert "/sesguard history" in bot.command("help", user=OUTSIDER)["text"]


@pytest.mark.parametrize("term, calls", [
    (ALICE_ARN, "ListIdentities ×2, GetSendQuota ×1"),
    ("alice", "ListIdentities ×2, GetSendQuota ×1"),
    ("198.51.100.9", "ListIdentities ×1"),  # an address: only the calls made from it
])
def test_history_by_arn_name_or_ip(bot, term, calls):
    signal_id = alice_calls(bot)
    body = answer_text(bot.command(f"history {term}"))
    assert ALICE_ARN in body and ACCOUNT in body
    assert f"*Per API:* {calls}" in body
    assert "198.51.100.9 ×1" in body and "eu-west-1 ×1" in body
    assert signal_id in body and "*new*" in body


def test_history_shows_the_outcome_of_signals_and_honours_days(bot):
    signal_id = alice_calls(bot)
    _suppression(bot, signal_id)
    assert "*suppressed*" in answer_text(bot.command("history alice 30"))
    old = cloudtrail_record(user="carol", when=utcnow() - timedelta(days=40))
    store_signals(bot.store, old)
    assert "No SES enumeration calls by carol in the last 30 days." in bot.command("history carol 30")["text"]
    assert "carol" in answer_text(bot.command("history carol 45"))
    assert "Days must be a number" in bot.command("history carol lots")["text"]
    assert "Days must be a number" in bot.command("history carol -1")["text"]


def test_history_escapes_what_it_echoes(bot):
    answer = answer_text(bot.command("history <https://evil.example|click>"))
    assert "No SES enumeration calls" in answer and "<https://evil" not in answer


def test_suppressions_lists_the_active_ones(bot):
    assert bot.command("suppressions")["text"] == "No active suppressions."
    signal_id = alice_calls(bot)
    number = _suppression(bot, signal_id, reason="pen-test <!channel>")
    body = answer_text(bot.command("suppressions"))
    assert f"*#{number}*" in body and ALICE_ARN in body and "pen-test &lt;!channel&gt;" in body
    assert "<!channel>" not in body and "<@UTRIAGER1>" in body


def test_unsuppress_lifts_once_and_audits(bot):
    signal_id = alice_calls(bot)
    number = _suppression(bot, signal_id)
    assert f"Lifted suppression #{number}" in bot.command(f"unsuppress {number}")["text"]
    assert "already lifted by <@UTRIAGER1>" in bot.command(f"unsuppress {number}")["text"]
    assert bot.command("suppressions")["text"] == "No active suppressions."
    with bot.store.session() as session:
        row = session.get(SuppressionRow, number)
        audit = [a.action for a in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert row.lifted_by == "UTRIAGER1" and audit == ["suppression created", "suppression lifted"]
    assert "There is no suppression #999" in bot.command("unsuppress 999")["text"]
    for junk in ("unsuppress", "unsuppress 1;DROP TABLE suppressions", "unsuppress ' OR 1=1 --",
                 "unsuppress 99999999999999"):
        assert "Usage" in bot.command(junk)["text"], junk


# Digits Python reads as numbers although nobody types them as such: Arabic-Indic, fullwidth, superscript,
# Devanagari, and what int()/float() forgive (whitespace, underscores, signs, exponents, nan).
NOT_ASCII_ONE = ["\u0661", "\uff11", "\u00b9", "\u0967"]
LOOSE_NUMBERS = ["\u00b2", "1_0", "+1", "1e1", "nan", "inf", "0x1"]


@pytest.mark.parametrize("number", NOT_ASCII_ONE + LOOSE_NUMBERS)
def test_unsuppress_reads_ascii_digits_only(bot, number):
    signal_id = alice_calls(bot)
    first = _suppression(bot, signal_id)
    assert first == 1
    answer = bot.command(f"unsuppress {number}")["text"]
    assert answer.startswith("Usage: `/sesguard unsuppress"), answer
    with bot.store.session() as session:
        assert session.get(SuppressionRow, first).lifted_at is None  # nothing lifted
    assert f"Lifted suppression #{first}" in bot.command(f"unsuppress #{first}")["text"]


@pytest.mark.parametrize("days", NOT_ASCII_ONE + LOOSE_NUMBERS + ["7.", "-1", "0"])
def test_history_days_are_ascii_decimals_only(bot, days):
    alice_calls(bot)
    assert "Days must be a number" in bot.command(f"history alice {days}")["text"]


def test_history_days_may_be_decimal(bot):
    alice_calls(bot)
    assert "alice" in answer_text(bot.command("history alice 0.5"))


def test_map_stores_the_mapping_and_audits_it(bot):
    answer = bot.command(f"map {ALICE_ARN} <@UALICE001|alice>")
    assert answer["text"] == f"Mapped {ALICE_ARN} to <@UALICE001>: Contact user will ask them about this identity."
    bot.command(f"map {ALICE_ARN} <@UALICE002>")
    with bot.store.session() as session:
        mapping = session.get(IdentityMapping, ALICE_ARN)
        audit = session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert (mapping.slack_user_id, mapping.set_by) == ("UALICE002", "UTRIAGER1")
    assert [(a.action, a.subject) for a in audit] == [("identity mapped", ALICE_ARN)] * 2
    assert "was UALICE001" in audit[1].detail
    for bad in ("map", f"map {ALICE_ARN}", "map alice <@UALICE001>", f"map {ALICE_ARN} alice",
                f"map {ALICE_ARN} <!channel>"):
        assert "Usage" in bot.command(bad)["text"], bad


def test_status_shows_each_poll_with_its_lag_and_errors(bot):
    assert "no poll has run yet" in bot.command("status")["text"]
    with bot.store.session() as session:
        session.add(PollState(source="lookup", account_id=ACCOUNT, region="us-east-1",
                              watermark=utcnow() - timedelta(minutes=5),
                              last_success_at=utcnow() - timedelta(hours=3), consecutive_failures=5,
                              last_error="ThrottlingException <!channel>", last_error_at=utcnow()))
        session.commit()
    body = answer_text(bot.command("status"))
    assert "polling is failing" in body and f"{ACCOUNT}/us-east-1" in body and "ThrottlingException" in body
    assert "<!channel>" not in body


def test_status_shows_delivery_to_slack_and_the_alerts_set_aside(bot):
    signal_id = alice_calls(bot)
    set_post(bot.store, signal_id, failures=2, error="HTTP 200 invalid_blocks",
             retry_at=utcnow() + timedelta(minutes=10))
    record_pass(bot.store, CHANNEL, stopped_by="HTTP 200 token_revoked", transient=False)
    body = answer_text(bot.command("status"))
    assert "delivery to Slack is failing" in body and f"FAILING delivery to {CHANNEL}" in body
    assert "stopped by an error: HTTP 200 token_revoked" in body and "1 alerts waiting to be posted" in body
    assert "1 alerts set aside" in body and signal_id in body and ALICE_ARN in body
    assert "HTTP 200 invalid_blocks; failed 2 time(s) in a row, next attempt after" in body
