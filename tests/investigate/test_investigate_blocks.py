"""The investigation's messages as pure builders: one readable message however much was read, every
CloudTrail value escaped, Slack's Block Kit limits kept."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from bot.investigate.blocks import escalation_line, render
from detection.investigate import Reading, Subject, Window, summarise
from tests.support import records
from tests.support.local_aws import OWN_ACCOUNT

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <@U1> <https://evil.example|click> &amp; "


def fifty_pages() -> list[dict]:
    """2,500 records (50 LookupEvents pages) over 2,100 APIs, 400 addresses and 200 user agents, all hostile."""
    identity = records.iam_user("busy", account=OWN_ACCOUNT)
    out = []
    for n in range(2500):
        record = records.record(identity, f"{HOSTILE}Call{n % 300:03d}", source=f"{HOSTILE}{n % 7}.amazonaws.com",
                                time=(NOW - timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                ip=f"{HOSTILE}{n % 400}", agent=HOSTILE + "A" * 5000 + str(n % 200),
                                error=f"{HOSTILE}AccessDenied{n % 50}" if n % 3 == 0 else None)
        record["readOnly"] = n % 2 == 0
        out.append(record)
    out += [records.record(identity, "SendEmail", time=(NOW - timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           agent=HOSTILE) for n in range(3)]
    return out


def test_a_fifty_page_answer_is_one_readable_message_within_slacks_limits():
    arn = f"arn:aws:iam::{OWN_ACCOUNT}:user/busy"
    reading = Reading(lookups=[f"Username={HOSTILE} in {OWN_ACCOUNT}/us-east-1"] * 30, pages=50, page_cap=50,
                      capped=True, complete_since=NOW - timedelta(hours=1), problems=[HOSTILE * 40] * 20)
    summary = summarise(fifty_pages(), Subject(HOSTILE + arn, OWN_ACCOUNT, arn, "IAMUser"),
                        Window(NOW - timedelta(days=1), NOW), reading)
    message = render(summary, "UTRIAGER1", "high")

    blocks = message["blocks"]
    assert len(blocks) <= 12 and len(message["text"]) <= 3000
    for block in blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        assert all(len(e["text"]) <= 3000 for e in block.get("elements", []))
    everything = json.dumps(message, ensure_ascii=False)
    assert "<!channel>" not in everything and "<@U1>" not in everything and "<https://" not in everything
    assert re.findall(r"<[^>]*>", everything) == ["<@UTRIAGER1>"]  # the requester: the one mention
    apis = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Calls per API*"))
    assert apis.count("\n• ") == 15 and "… and 2086 more APIs (" in apis  # 2,100 source × name pairs and SendEmail
    assert "2503 other calls" in everything and "Stopped at the page cap (50 pages" in everything
    assert "*ses:SendEmail* ×3" in everything


def test_the_escalation_line_mentions_the_channel_once_and_escapes_the_identity():
    identity = records.iam_user("mallory", account=OWN_ACCOUNT)
    sent = [records.record(identity, "SendEmail", time=(NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))]
    arn = identity["arn"]
    summary = summarise(sent, Subject(arn, OWN_ACCOUNT, arn, "IAMUser"), Window(NOW - timedelta(hours=1), NOW))
    line = escalation_line(summary, f"{HOSTILE}{arn}")
    assert line.startswith("<!channel> ") and line.count("<") == 1
    assert "ses:SendEmail ×1" in line and "&lt;!channel&gt;" in line
