"""The learning report's message and `/sesguard learned`'s lines: pure builders, no I/O.

Every identity and call name came from CloudTrail: through `text()`, as in the alert. The message keeps
Slack's 50 blocks: the lines are packed into sections of at most 3,000 characters, the identities that
would have been `high` (or worse) first, and what does not fit is counted ("… and N more").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, PlainTextObject

from bot.alerts.blocks import SEVERITY_ICONS
from bot.slack.blocks import dicts, listing, md, text, text_blocks, when
from detection.signals import SEVERITIES
from detection.store import utcnow

REPORT_EVENT_TYPE = "sesguard_learning_report"
MAX_LINES = 45  # each line fits a section (3,000 characters): with the head, within 50 blocks


def ranked(learned: Sequence[Any]) -> list[Any]:
    """The most severe first, then in the order they were first seen."""
    return sorted(learned, key=lambda row: (-SEVERITIES.index(row.as_signal().severity), row.first_seen, row.identity))


def identity_line(row: Any) -> str:
    signal = row.as_signal()
    calls = sorted(row.calls.items(), key=lambda item: (-item[1], item[0]))
    mark = f"{SEVERITY_ICONS.get(signal.severity, '')} *would have been {signal.severity}*" \
        if signal.severity in ("high", "critical") else f"_{signal.severity}_"
    line = (f"• {mark} {text(row.identity, 400)} ({text(row.identity_type, 40)}): "
            f"{listing([f'{name} ×{count}' for name, count in calls], 500)}; "
            f"{when(row.first_seen)} to {when(row.last_seen)}; regions {listing(row.regions, 200)}")
    if signal.severity in ("high", "critical"):
        line += f"; {listing(signal.reasons, 600, separator='; ')}"
    return line


def ended_or_ends(learning_ends: datetime | None, now: datetime | None = None) -> str:
    """"ended" for a learning period that is over, "ends" for one still to come (or not known)."""
    return "ended" if learning_ends is not None and learning_ends <= (now or utcnow()) else "ends"


def report_lines(account_id: str, learned: Sequence[Any], observed_since: datetime | None,
                 learning_ends: datetime | None, now: datetime | None = None) -> list[str]:
    rows = ranked(learned)
    high = sum(1 for row in rows if row.as_signal().severity in ("high", "critical"))
    lines = [f"Observed since {when(observed_since)}; learning {ended_or_ends(learning_ends, now)} at "
             f"{when(learning_ends)}. These {len(rows)} identities made SES enumeration calls while sesguard was "
             f"learning silently: they are known now and will not alert. *{high}* would have been `high`."]
    lines += [identity_line(row) for row in rows[:MAX_LINES]]
    if len(rows) > MAX_LINES:
        lines.append(f"… and {len(rows) - MAX_LINES} more: `/sesguard learned {text(account_id, 40)}` lists them")
    return lines


def report_message(account_id: str, learned: Sequence[Any], observed_since: datetime | None,
                   learning_ends: datetime | None) -> list[dict]:
    head = dicts([
        HeaderBlock(text=PlainTextObject(text=f":mortar_board: Learning ended for AWS account {account_id}"[:150])),
        ContextBlock(elements=[md("Nothing is dropped unseen: review these, and treat any you do not recognise "
                                  "as an alert (`/sesguard history`, `/sesguard investigate`).")]),
    ])
    return head + text_blocks(report_lines(account_id, learned, observed_since, learning_ends))[:48]


def report_text(account_id: str, learned: Sequence[Any]) -> str:
    high = sum(1 for row in learned if row.as_signal().severity in ("high", "critical"))
    return (f"Learning ended for AWS account {text(account_id, 40)}: {len(learned)} identities learned silently, "
            f"{high} would have been high")
