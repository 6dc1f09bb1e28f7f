"""The triage context in the alert (SPEC §10): pure Block Kit, no I/O.

One section answers the rule's first triage question — should this identity have made these calls from this
address? — a line for each key, one for the owner, one for each address. Every value from AWS or CloudTrail
(tag values, names, reasons) goes through `text()`: escaped, control characters shown as `?`, cut.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block, SectionBlock

from bot.context.facts import AddressFacts, Context, KeyFacts, OwnerFacts, Seen
from bot.context.tables import PENDING
from bot.slack.blocks import md, mention, text

# The whole part within one section (3,000) and the alert's budget (bot.alerts.blocks): lines that do not fit
# are counted, never the message refused.
CONTEXT_LIMIT = 2500
REASON_LIMIT = 160
NAMED_LIMIT = 120
HEADING = "*Triage context* (should this identity have made these calls from this address?)"
GATHERING = f"{HEADING}\n_Being gathered: the key, the owner, the address…_"


def context_blocks(state: str | None, facts: dict | None, first_seen: datetime) -> list[Block]:
    """The alert's context part for a stored `TriageContext` (state and facts); nothing without one."""
    if state is None:
        return []
    if state == PENDING or facts is None:
        return [SectionBlock(text=md(GATHERING))]
    return [SectionBlock(text=md(context_text(Context.from_dict(facts), first_seen)))]


def context_text(context: Context, first_seen: datetime) -> str:
    lines = [*_key_lines(context, first_seen), _owner_line(context.owner), *_address_lines(context)]
    shown, length = [HEADING], len(HEADING)
    for index, line in enumerate(lines):
        more = f"\n… {len(lines) - index} more lines (lookups of this alert kept in the store)"
        if length + 1 + len(line) + len(more) > CONTEXT_LIMIT:
            shown.append(more.strip())
            break
        shown.append(line)
        length += 1 + len(line)
    return "\n".join(shown)


def unknown(reason: str | None) -> str:
    return f"unknown ({text(reason or 'no reason given', REASON_LIMIT)})"


# ── the key ──────────────────────────────────────────────────────────────────────────────────────────


def _key_lines(context: Context, first_seen: datetime) -> list[str]:
    if not context.keys:
        return [f"• *Key*: {text(context.keys_note or 'none', REASON_LIMIT + 60)}"]
    lines = [_key_line(key, first_seen) for key in context.keys]
    if context.keys_more:
        lines.append(f"• … {context.keys_more} more long-term keys, not looked up")
    return lines


def _key_line(key: KeyFacts, first_seen: datetime) -> str:
    if key.created_unknown is not None:
        created = f"created {unknown(key.created_unknown)}"
    else:
        moment = _moment(key.created)
        created = f"created {_day(moment)} ({age(moment, first_seen)})" if moment else "created -"
        if key.status and key.status != "Active":
            created += f", now {text(key.status, 20)}"
    if key.last_used_unknown is not None:
        used = f"last used {unknown(key.last_used_unknown)}"
    elif key.never_used:
        used = "never used before, says IAM"
    else:
        moment = _moment(key.last_used)
        where = ", ".join(text(part, 40) for part in (key.last_service, key.last_region) if part)
        used = f"last used {_minute(moment)}" + (f" ({where})" if where else "")
        if moment and moment >= first_seen:  # IAM keeps only the latest use, and these calls are uses
            used += ": these calls or later"
    return f"• *Key* {text(key.key_id, 30)}: {created} · {used} · {_seen_key(key)}"


def _seen_key(key: KeyFacts) -> str:
    if key.seen_unknown is not None:
        return f"seen before {unknown(key.seen_unknown)}"
    return _seen(key.seen_before, "never seen before in this account's stored SES calls",
                 "seen before in this account")


# ── the owner ────────────────────────────────────────────────────────────────────────────────────────


def _owner_line(owner: OwnerFacts) -> str:
    if owner.slack_id or owner.named:
        who = mention(owner.slack_id) if owner.slack_id else f"_{text(owner.named, NAMED_LIMIT)}_"
        line = f"• *Owner*: {who}"
        if owner.source:
            line += f" — {text(owner.source, 80)}"
            if owner.named and owner.slack_id:
                line += f": {text(owner.named, NAMED_LIMIT)}"
        if owner.note:
            line += f" ({text(owner.note, 100)})"
        if owner.unknown is not None:
            line += f"; Slack user {unknown(owner.unknown)}"
        return line
    if owner.unknown is not None:
        return f"• *Owner*: {unknown(owner.unknown)}"
    return f"• *Owner*: none found ({text(owner.none_because or 'nothing names one', REASON_LIMIT + 100)})"


# ── the address ──────────────────────────────────────────────────────────────────────────────────────


def _address_lines(context: Context) -> list[str]:
    lines = [_address_line(address, context) for address in context.addresses]
    if context.addresses_more:
        lines.append(f"• … {context.addresses_more} more source addresses, not looked up")
    return lines


def _address_line(address: AddressFacts, context: Context) -> str:
    head = f"• *Address* {text(address.address, 60)}: "
    if not address.is_ip:
        return head + "not an IP address (an AWS service calling on the caller's behalf)"
    parts = []
    if address.known_network:
        label = text(address.known_label, 80) if address.known_label else "a known network"
        parts.append(f"{label} ({text(address.known_network, 50)}, SESGUARD_KNOWN_NETWORKS)")
    else:
        parts.append("in none of SESGUARD_KNOWN_NETWORKS")
    ranges = f"AWS's ranges of {text(context.ranges_published, 12)}" + (
        ", the shipped excerpt: run `sesguard ip-ranges`" if context.ranges_shipped else "")
    if address.aws_prefix:
        parts.append(f"AWS {text(address.aws_service, 40)} in {text(address.aws_region, 40)} "
                     f"({text(address.aws_prefix, 50)}; {ranges})")
    else:
        parts.append(f"not in {ranges}")
    if address.seen_unknown is not None:
        parts.append(f"seen before {unknown(address.seen_unknown)}")
    else:
        parts.append(_seen(address.by_identity, "this identity never called from it before",
                           "this identity called from it before"))
        # the account's calls include the identity's: when it has none, neither has the identity
        parts.append(_seen(address.by_account, "nor did anyone in this account", "this account called from it before"))
    return head + " · ".join(parts)


# ── words ────────────────────────────────────────────────────────────────────────────────────────────


def _seen(seen: Seen, never: str, some: str) -> str:
    """`never` when no stored call, else `some` with the count and when."""
    if not seen.calls:
        return never
    first, last = _day(_moment(seen.first)), _day(_moment(seen.last))
    return f"{some}: {seen.calls} calls, {first if first == last else f'{first} to {last}'}"


def age(moment: datetime, at: datetime) -> str:
    """How long before `at` (the alert's first call) `moment` was, in words."""
    delta = at - moment
    if delta < -timedelta(minutes=1):  # CloudTrail's times are whole seconds: the same second is not "after"
        return "after these calls"
    if delta < timedelta(hours=1):
        return "less than an hour before these calls"
    days = delta.days
    if days < 1:
        hours = int(delta.total_seconds() // 3600)
        return f"{hours} hours before these calls" if hours != 1 else "1 hour before these calls"
    if days < 60:
        return f"{days} days before these calls" if days != 1 else "1 day before these calls"
    if days < 730:
        return f"{days // 30} months before these calls"
    return f"{days // 365} years before these calls"


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else "-"


def _minute(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"
