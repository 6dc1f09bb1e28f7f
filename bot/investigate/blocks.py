"""The investigation's messages (SPEC §6): the summary and the escalation line; pure builders, no I/O.

Every value in them came from CloudTrail and goes through `text` or `listing` (escaped, cut). The summary
is one message however much was read: the top 15 APIs with the rest counted, the first addresses, keys
and user agents, each list cut to its section, a dozen blocks at most.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, SectionBlock

from bot.investigate.tables import POSTED
from bot.slack.blocks import (
    FALLBACK_TEXT_LIMIT,
    FIELD_TEXT_LIMIT,
    SECTION_TEXT_LIMIT,
    dicts,
    listing,
    md,
    mention,
    text,
    when,
)
from detection.investigate import TOP_APIS, Summary
from detection.playbook import PLAYBOOK

AUTOMATIC = "sesguard"
USER_AGENTS_SHOWN = 5
USER_AGENT_LIMIT = 300
API_LINE_LIMIT = 180
WRITE_MARK = ":pencil2:"


def _counted(counts: Mapping[str, int], limit: int) -> str:
    return listing([f"{value} ×{count}" for value, count in counts.items()], limit)


def _requested(requested_by: str | None, severity: str | None) -> str:
    if requested_by == AUTOMATIC:
        return f"automatic, for a *{text(str(severity).upper(), 20)}* alert" if severity else "automatic"
    return f"requested by {mention(requested_by)}" if requested_by else "requested from the command line"


def _title(summary: Summary, requested_by: str | None, severity: str | None) -> str:
    account = (f" in account {text(summary.account_id, 40)}" if summary.account_id
               else " in every account sesguard reads")
    return (f":mag: *Investigation* of {text(summary.subject, 600)}{account} ({_requested(requested_by, severity)})\n"
            f"*Window:* {when(summary.window.start)} → {when(summary.window.end)}")


def _overview(summary: Summary) -> str:
    if not summary.calls:
        line = "*No other calls* by it in the window."
    else:
        line = (f"*{_count(summary.calls, 'other call')}* ({summary.writes} write, {summary.calls - summary.writes} "
                f"read) to {_count(len(summary.apis), 'API')}, {when(summary.first_at)} → {when(summary.last_at)}.")
    if summary.enumeration_calls:
        line += f" The alert's own {summary.enumeration_calls} enumeration calls are left out."
    if summary.unreadable:
        line += f" {summary.unreadable} events could not be read."
    return line


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _follow_on(summary: Summary) -> str:
    since = f"after {when(summary.enumeration_start)}" if summary.enumeration_start else "in the window"
    if not summary.follow_on:
        return (f":white_check_mark: *No follow-on abuse* {since}: none of the {len(PLAYBOOK)} calls of the "
                "SES-abuse and persistence playbook (sending, leaving the sandbox, new keys, users, policies, trails).")
    lines = [f":rotating_light: *Follow-on abuse* {since}: {len(summary.follow_on)} of the playbook's calls"]
    for move in summary.follow_on:
        failed = f", {move.failed} failed" if move.failed else ""
        lines.append(f"• *{text(move.api, API_LINE_LIMIT)}* ×{move.calls}{failed}, first {when(move.first_at)}: "
                     f"{text(move.why, 100)}")
    return _fit(lines)


def _apis(summary: Summary) -> str:
    shown, more_apis, more_calls = summary.top_apis(TOP_APIS)
    lines = [f"*Calls per API* (write calls first, marked {WRITE_MARK}):"]
    for api in shown:
        notes = [f"{api.failed} failed"] if api.failed else []
        if api.denied:
            notes.append(f"{api.denied} denied")
        suffix = f" ({', '.join(notes)})" if notes else ""
        mark = f"{WRITE_MARK} " if api.write else ""
        lines.append(f"• {mark}{text(api.api, API_LINE_LIMIT)} ×{api.calls}{suffix}")
    if more_apis:
        lines.append(f"… and {more_apis} more APIs ({more_calls} calls)")
    return _fit(lines)


def _errors(summary: Summary) -> str:
    line = f"*Errors:* {_counted(summary.errors, 1500)}"
    if summary.denied:
        denied_apis = sum(1 for api in summary.apis if api.denied)
        line += (f"\n:warning: {_count(summary.denied, 'call')} to {_count(denied_apis, 'API')} were denied: "
                 "permission probing (the key trying what it may do)")
    return line


def _reading(summary: Summary) -> list[str]:
    reading = summary.reading
    lines = [f"Read with CloudTrail LookupEvents: {reading.pages} pages; "
             f"{listing(reading.lookups, 1200, separator='; ')}"]
    if reading.capped:
        lines.append(f":warning: Stopped at the page cap ({reading.page_cap} pages, SESGUARD_INVESTIGATE_MAX_PAGES): "
                     f"complete from {when(reading.complete_since)} on; earlier calls of the window were not read.")
    return lines


def _problems(summary: Summary) -> str | None:
    if not summary.reading.problems:
        return None
    return f":warning: *Not everything could be read:* {listing(summary.reading.problems, 2500, separator='; ')}"


def summary_blocks(summary: Summary, requested_by: str | None = None, severity: str | None = None) -> list[dict]:
    """The summary as Slack's JSON: for the alert's thread, an ephemeral answer, or the demo."""
    blocks: list[Block | None] = [  # a part with nothing to show is None, dropped at the end
        SectionBlock(text=md(_title(summary, requested_by, severity))),
        SectionBlock(text=md(_overview(summary))),
        SectionBlock(text=md(_follow_on(summary))),
    ]
    problems = _problems(summary)
    if problems:
        blocks.append(SectionBlock(text=md(problems)))
    if summary.calls:
        blocks += [
            DividerBlock(),
            SectionBlock(text=md(_apis(summary))),
            SectionBlock(text=md(_errors(summary))) if summary.errors else None,
            SectionBlock(fields=[md(f"*{label}*\n{value}") for label, value in (
                ("Regions", _counted(summary.regions, FIELD_TEXT_LIMIT - 40)),
                ("Source IPs", _counted(summary.source_ips, FIELD_TEXT_LIMIT - 40)),
                ("Access keys", _counted(summary.access_keys, FIELD_TEXT_LIMIT - 40)),
            )]),
            SectionBlock(text=md(_user_agents(summary.user_agents))),
        ]
    blocks.append(ContextBlock(elements=[md(line) for line in _reading(summary)]))
    return dicts([block for block in blocks if block is not None])


def _user_agents(agents: Mapping[str, int]) -> str:
    lines = ["*User agents*"]
    shown = list(agents.items())[:USER_AGENTS_SHOWN]
    lines += [f"• {text(agent, USER_AGENT_LIMIT)} ×{count}" for agent, count in shown]
    if len(agents) > USER_AGENTS_SHOWN:
        lines.append(f"… and {len(agents) - USER_AGENTS_SHOWN} more")
    return _fit(lines)


def summary_text(summary: Summary) -> str:
    """The plain-text fallback (notifications, screen readers)."""
    follow_on = (listing([f"{move.api} ×{move.calls}" for move in summary.follow_on], 800)
                 if summary.follow_on else "none")
    return (f"Investigation of {text(summary.subject, 600)}: {summary.calls} other calls "
            f"({summary.writes} write) from {when(summary.window.start)} to {when(summary.window.end)}; "
            f"follow-on abuse: {follow_on}")[:FALLBACK_TEXT_LIMIT]


def escalation_line(summary: Summary, identity: str) -> str:
    """The thread line of an escalation: the one channel mention, the calls that caused it."""
    calls = listing([f"{move.api} ×{move.calls}" for move in summary.follow_on], 1500)
    return (f"<!channel> :rotating_light: *Follow-on abuse* by {text(identity, 600)} after its SES enumeration: "
            f"{calls}. Severity is now *CRITICAL*: treat the identity as compromised.")


def _fit(lines: list[str]) -> str:
    """Lines joined within a section's limit; those that do not fit are counted, not cut in half."""
    kept: list[str] = []
    length = 0
    for index, line in enumerate(lines):
        if length + len(line) + 1 > SECTION_TEXT_LIMIT - 40:
            kept.append(f"… {len(lines) - index} more lines")
            break
        kept.append(line)
        length += len(line) + 1
    return "\n".join(kept)


def render(summary: Summary, requested_by: str | None, severity: str | None) -> dict[str, Any]:
    """The summary message, as stored with its investigation and posted: `text` and `blocks`."""
    return {"text": summary_text(summary), "blocks": summary_blocks(summary, requested_by, severity)}


def not_applicable(signal: Any) -> str:
    """Why a click on Investigate did nothing: the alert is suppressed (or gone)."""
    return ("Nothing was investigated: this alert is suppressed. "
            f"`/sesguard investigate {text(signal.arn or signal.identity, 600)}` still answers for its identity.")


def requested_before(investigation: Any) -> str:
    """A second click: the investigation under way, or the same window's, done already."""
    who = "automatically" if investigation.requested_by == AUTOMATIC else f"by {mention(investigation.requested_by)}"
    if investigation.state != POSTED:
        return (f"An investigation of this alert is under way (requested {who} at {when(investigation.requested_at)}): "
                "its summary will be in the alert's thread.")
    done = f"{who} at {when(investigation.requested_at)}"
    window = f"This window ({when(investigation.window_start)} → {when(investigation.window_end)})"
    if investigation.error:
        return f"{window} was investigated {done}, without a summary: {text(investigation.error, 300)}"
    return f"{window} was investigated {done}: its summary is in the alert's thread."
