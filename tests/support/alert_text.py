"""What an alert shows, as the Block Kit tests read it: every `<…>` Slack would interpret, every text of a
message's blocks, the budget those texts keep, and a signal whose every value is as long as a store row allows."""

from __future__ import annotations

import re
from datetime import datetime
from types import SimpleNamespace

# Slack refuses a message whose blocks hold more than about 13,000 characters in all (`msg_blocks_too_long`,
# undocumented: https://github.com/slackapi/bolt-js/issues/2509); the alert keeps well below.
MESSAGE_BLOCKS_TEXT_BUDGET = 12_000

HUGE = "<!channel>&" * 10_000
MANY = [f"{n}{HUGE}" for n in range(300)]


def raw_brackets(text: str) -> list[str]:
    """Every `<…>` Slack would interpret in a message."""
    return re.findall(r"<[^<>]*>", text)


def block_texts(message: list[dict]) -> list[str]:
    """Every text a message's blocks show (sections, fields, context elements, buttons, the header)."""
    found = []
    for block in message:
        found.append((block.get("text") or {}).get("text", ""))
        found += [item.get("text", "") for item in block.get("fields", [])]
        for element in block.get("elements", []):
            inner = element.get("text")
            found.append(inner.get("text", "") if isinstance(inner, dict) else inner or "")
    return found


def huge_signal(first_seen: datetime, last_seen: datetime) -> SimpleNamespace:
    """As a damaged or forged store row could hold it: every text huge, every list long."""
    return SimpleNamespace(
        signal_id="s-1", account_id=HUGE, identity="arn:aws:iam::111122223333:role/" + HUGE,
        arn="arn:aws:sts::111122223333:assumed-role/" + HUGE, identity_type=HUGE, severity=HUGE, status=HUGE,
        reasons=MANY, regions=MANY, source_ips=MANY, user_agents=MANY, access_key_ids=MANY, error_codes=MANY,
        event_names=MANY, event_count=10**12, first_seen=first_seen, last_seen=last_seen)
