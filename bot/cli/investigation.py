"""What `sesguard investigate` prints for a person: the summary of an identity's or key's other activity,
or an address's stored SES calls. Every CloudTrail value passes `printable()` (no escape sequence, no
forged line); long ones are cut, lists end with how many more there were."""

from __future__ import annotations

from collections.abc import Mapping

from bot.cli.terminal import clip
from bot.printable import printable
from detection.history import IdentityHistory
from detection.investigate import ADDRESS_NOTE, TOP_APIS, Summary
from detection.record import format_time

VALUE_LIMIT = 200
SHOWN = 10


def _value(value: object) -> str:
    return clip(printable(value), VALUE_LIMIT)


def _counts(counts: Mapping[str, int], shown: int = SHOWN) -> str:
    items = [f"{_value(value)} ×{count}" for value, count in list(counts.items())[:shown]]
    if len(counts) > shown:
        items.append(f"… {len(counts) - shown} more")
    return ", ".join(items) or "-"


def _time(moment) -> str:
    return format_time(moment) if moment else "-"


def summary_report(summary: Summary) -> str:
    lines = [
        f"investigation of {_value(summary.subject)} in "
        f"{('account ' + _value(summary.account_id)) if summary.account_id else 'every account sesguard reads'}",
        f"window: {_time(summary.window.start)} → {_time(summary.window.end)}",
        f"other calls: {summary.calls} ({summary.writes} write), {_time(summary.first_at)} → {_time(summary.last_at)}"
        + (f"; the alert's {summary.enumeration_calls} enumeration calls left out"
           if summary.enumeration_calls else ""),
    ]
    since = f"after {_time(summary.enumeration_start)}" if summary.enumeration_start else "in the window"
    if summary.follow_on:
        lines.append(f"FOLLOW-ON ABUSE {since}:")
        lines += [f"  {_value(move.api)} ×{move.calls}" + (f" ({move.failed} failed)" if move.failed else "")
                  + f", first {_time(move.first_at)}: {move.why}" for move in summary.follow_on]
    else:
        lines.append(f"follow-on abuse {since}: none")
    shown, more_apis, more_calls = summary.top_apis(TOP_APIS)
    if shown:
        lines.append("calls per API (write calls first, marked W):")
        lines += [f"  {'W' if api.write else ' '} {_value(api.api)} ×{api.calls}"
                  + (f" ({api.failed} failed, {api.denied} denied)" if api.failed else "") for api in shown]
        if more_apis:
            lines.append(f"  … {more_apis} more APIs ({more_calls} calls)")
    lines += [
        f"errors: {_counts(summary.errors)}"
        + (f" ({summary.denied} denied: permission probing)" if summary.denied else ""),
        f"regions: {_counts(summary.regions)}",
        f"source IPs: {_counts(summary.source_ips)}",
        f"access keys: {_counts(summary.access_keys)}",
        f"user agents: {_counts(summary.user_agents, 5)}",
        f"read: {summary.reading.pages} LookupEvents pages ({len(summary.reading.lookups)} lookups)",
    ]
    if summary.reading.capped:
        lines.append(f"stopped at the page cap ({summary.reading.page_cap} pages): complete from "
                     f"{_time(summary.reading.complete_since)} on")
    lines += [f"could not read: {_value(problem)}" for problem in summary.reading.problems]
    return "\n".join(lines) + "\n"


def address_report(term: str, history: IdentityHistory | None, days: float) -> str:
    if history is None:
        return f"no stored SES enumeration calls from {_value(term)} in the last {days:g} days\n{ADDRESS_NOTE}\n"
    lines = [
        f"stored SES enumeration calls from {_value(term)} (last {days:g} days): {history.event_count}, "
        f"{_time(history.first_seen)} → {_time(history.last_seen)}",
        f"identities: {', '.join(_value(i) for i in history.identities[:SHOWN])}"
        + (f", … {len(history.identities) - SHOWN} more" if len(history.identities) > SHOWN else ""),
        f"accounts: {', '.join(_value(a) for a in history.accounts)}",
        f"per API: {_counts(history.calls)}",
        f"regions: {_counts(history.regions)}",
        f"signals: {len(history.signals)}",
    ]
    lines += [f"  {_time(s.first_seen)} {_value(s.severity)} {_value(s.identity)} → {_value(s.status)} ({s.signal_id})"
              for s in history.signals]
    return "\n".join(lines + [ADDRESS_NOTE]) + "\n"
