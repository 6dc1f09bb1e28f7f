"""The triage context's part of the alert, on its own: every line's words, hostile values escaped and cut, and
the worst case within the alert's budget."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.alerts.blocks import alert_message
from bot.context import blocks
from bot.context.blocks import CONTEXT_LIMIT, GATHERING, age, context_blocks, context_text
from bot.context.facts import AddressFacts, Context, KeyFacts, OwnerFacts, Seen
from bot.context.tables import DONE, PENDING
from bot.slack.blocks import dicts
from tests.fakes.block_kit import message_problems
from tests.support.alert_text import MANY, MESSAGE_BLOCKS_TEXT_BUDGET, block_texts, huge_signal, raw_brackets

FIRST = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel>&\u202e\n" * 400


def worst() -> Context:
    """Every value as long and hostile as a forged row could hold it, every list at its cap."""
    keys = [KeyFacts(f"AKIA{n}{HOSTILE}", created_unknown=HOSTILE, last_used_unknown=HOSTILE, seen_unknown=HOSTILE)
            for n in range(3)]
    owner = OwnerFacts(named=HOSTILE, source=HOSTILE, note=HOSTILE, unknown=HOSTILE)
    addresses = [AddressFacts(HOSTILE, known_network=HOSTILE, known_label=HOSTILE, aws_prefix=HOSTILE,
                              aws_service=HOSTILE, aws_region=HOSTILE, seen_unknown=HOSTILE) for _ in range(5)]
    return Context(keys=keys, keys_more=10**9, owner=owner, addresses=addresses, addresses_more=10**9,
                   ranges_published=HOSTILE)


def test_no_row_shows_nothing_a_pending_one_says_it_is_coming():
    assert context_blocks(None, None, FIRST) == []
    assert dicts(context_blocks(PENDING, None, FIRST))[0]["text"]["text"] == GATHERING


def test_the_worst_case_is_escaped_and_cut_within_its_limit_and_the_alerts_budget():
    text = context_text(worst(), FIRST)
    assert len(text) <= CONTEXT_LIMIT and "<!channel>" not in text and "\n•" in text
    assert text.endswith("(lookups of this alert kept in the store)")  # the lines that did not fit are counted
    part = context_blocks(DONE, worst().to_dict(), FIRST)
    message = alert_message(huge_signal(FIRST, FIRST), {key: n for n, key in enumerate(MANY)}, context=part)
    assert message_problems({"blocks": message}) == []
    assert sum(map(len, block_texts(message))) <= MESSAGE_BLOCKS_TEXT_BUDGET
    assert raw_brackets(json.dumps(message)) == []


def test_the_lines_in_words():
    context = Context(
        keys=[KeyFacts("AKIAIOSFODNN7EXAMPLE", created="2021-03-04T05:06:07+00:00", status="Inactive",
                       last_used="2025-06-01T12:30:00+00:00", last_service="ses", last_region="eu-west-1",
                       seen_before=Seen(3, "2025-04-01T00:00:00+00:00", "2025-04-02T00:00:00+00:00"))],
        owner=OwnerFacts(named="alice@example.com", source="IAM user tag email", note="no Slack user has this e-mail"),
        addresses=[AddressFacts("198.51.100.7", known_network="198.51.100.0/24", known_label="Berlin office",
                                by_identity=Seen(2, "2025-05-01T00:00:00+00:00", "2025-05-01T00:00:00+00:00"),
                                by_account=Seen(5, "2025-01-01T00:00:00+00:00", "2025-05-01T00:00:00+00:00"))],
        ranges_published="2026-01-01", ranges_shipped=False)
    assert context_text(context, FIRST).split("\n")[1:] == [
        "• *Key* AKIAIOSFODNN7EXAMPLE: created 2021-03-04 (4 years before these calls), now Inactive · last used "
        "2025-06-01 12:30 UTC (ses, eu-west-1): these calls or later · seen before in this account: 3 calls, "
        "2025-04-01 to 2025-04-02",
        "• *Owner*: _alice@example.com_ — IAM user tag email (no Slack user has this e-mail)",
        "• *Address* 198.51.100.7: Berlin office (198.51.100.0/24, SESGUARD_KNOWN_NETWORKS) · not in AWS's ranges "
        "of 2026-01-01 · this identity called from it before: 2 calls, 2025-05-01 · this account called from it "
        "before: 5 calls, 2025-01-01 to 2025-05-01",
    ]


def test_ages_in_words():
    assert [age(FIRST - delta, FIRST) for delta in (
        timedelta(seconds=-30), timedelta(minutes=-5), timedelta(minutes=59), timedelta(hours=1), timedelta(hours=5),
        timedelta(days=1), timedelta(days=59), timedelta(days=61), timedelta(days=800))] == [
        "less than an hour before these calls", "after these calls", "less than an hour before these calls",
        "1 hour before these calls", "5 hours before these calls", "1 day before these calls",
        "59 days before these calls", "2 months before these calls", "2 years before these calls"]
    assert blocks.unknown(None) == "unknown (no reason given)"
