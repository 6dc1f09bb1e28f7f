"""`/sesguard`'s answers: the help text, an identity's history, the suppressions; escaped mrkdwn lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.slack.blocks import listing, mention, text, when

HELP_TEXT = "\n".join([
    "*`/sesguard`* — SES enumeration alerts",
    ("• `/sesguard history &lt;arn|name|ip&gt; [days]` — the identity's SES calls, signals and outcomes "
     "(default 90 days)"),
    "• `/sesguard suppressions` — active suppressions",
    "• `/sesguard unsuppress &lt;id&gt;` — lift a suppression",
    "• `/sesguard map &lt;arn&gt; &lt;@user&gt;` — who to ask about an identity",
    "• `/sesguard status` — last poll, lag and errors per account and region; delivery to Slack and alerts set aside",
    "• `/sesguard investigate &lt;arn|access-key-id|ip&gt; [hours]` — what else it did in CloudTrail "
    "(default: SESGUARD_INVESTIGATE_HOURS); for an IP, its stored SES calls across identities",
    "• `/sesguard learned [account]` — what the learning period learned silently (the learning report again)",
    "• `/sesguard stats [days]` — signals by severity and outcome, alerts open, time to the first triage action, "
    "contact answer rate, the busiest suppressions (default 7 days)",
    "• `/sesguard help` — this text",
])


def _counted(counts: Mapping[str, int], limit: int) -> str:
    return listing([f"{name} ×{count}" for name, count in counts.items()], limit)


def history_lines(history: Any) -> list[str]:
    lines = [
        f"*History of {text(history.term, 300)}* (last {history.days:g} days)",
        f"*Identities:* {listing(history.identities, 1200)}",
        f"*Accounts:* {listing(history.accounts, 600)}",
        f"*Calls:* {history.event_count}, first {when(history.first_seen)}, last {when(history.last_seen)}",
        f"*Per API:* {_counted(history.calls, 1200)}",
        f"*Source IPs:* {_counted(history.source_ips, 1200)}",
        f"*Regions:* {_counted(history.regions, 600)}",
        f"*Signals* ({len(history.signals)}):" if history.signals else "*Signals:* none",
    ]
    for s in history.signals:
        lines.append(
            f"• {when(s.first_seen)} {text(s.severity, 10)} in {text(s.account_id, 20)}: "
            f"{text(s.identity, 300)} → *{text(s.status, 20)}* ({text(s.signal_id, 40)})"
        )
    return lines


def suppression_line(row: Any, hits: int = 0) -> str:
    where = f"account {text(row.account_id, 20)}" if row.account_id else "every account"
    if row.source_cidr:
        where += f", from {text(row.source_cidr, 50)}"
    expiry = f"until {when(row.expires_at)}" if row.expires_at else "no expiry"
    return (
        f"• *#{row.id}* {text(row.identity, 400)} in {where}, {expiry}; covered {hits} "
        f"signal{'' if hits == 1 else 's'}; by {mention(row.author)} at {when(row.created_at)}: {text(row.reason, 500)}"
    )
