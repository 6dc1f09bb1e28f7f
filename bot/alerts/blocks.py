"""The alert message (SPEC §4) and the lines of its thread: pure Block Kit builders, no I/O.

`alert_message` renders a stored `SignalRow` (or a `Signal`): what happened, who, where, the calls, the
severity and reasons, the rule's triage steps, the status with who and when, and the buttons that still
apply in that status (`triage.states`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    PlainTextObject,
    SectionBlock,
)

from bot.slack.blocks import (
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    LIST_FIELD_LIMIT,
    SECTION_TEXT_LIMIT,
    dicts,
    fitted_fields,
    listing,
    md,
    mention,
    text,
    when,
)
from bot.slack.ids import Action
from bot.triage.states import buttons_for
from detection.rule import METADATA
from detection.signals import Status

# Each part of the alert has a budget, so that every block is within its own limit and the whole message
# within what Slack accepts in one message's blocks (about 13,000 characters: `msg_blocks_too_long`):
# header 150 + severity 2,000 + fields 3,000 + calls 2,500 + user agents 1,600 + triage steps ~500 +
# status and rule ~300 ≈ 10,000, and the triage context (bot.context.blocks) 2,500. Values from CloudTrail
# are cut to the budget, never the message refused.
REASONS_LIMIT = 2000
REASON_LIMIT = 400
CALLS_LIMIT = 2500
USER_AGENTS_LIMIT = 1600
USER_AGENT_LIMIT = 300

SEVERITY_ICONS = {"critical": ":sos:", "high": ":red_circle:", "medium": ":large_orange_circle:",
                  "low": ":large_yellow_circle:"}

STATUS_WORDS: dict[str, str] = {
    Status.NEW: "New: waiting for triage",
    Status.CONTACTING: "Waiting for the person's answer",
    Status.CONFIRMED: "The person confirmed it was them",
    Status.ESCALATED: "Escalated",
    Status.CLOSED: "Closed: not an issue",
    Status.SUPPRESSED: "Suppressed",
}
BUTTON_LABELS = {
    Action.ESCALATE: ("Escalate", "danger"),
    Action.CONTACT_USER: ("Contact user", None),
    Action.SUPPRESS: ("Suppress…", None),
    Action.NOT_AN_ISSUE: ("Not an issue", "primary"),
    Action.INVESTIGATE: ("Investigate", None),
    Action.REOPEN: ("Reopen", None),
}


def status_line(status: str, last_action: Any = None) -> str:
    """`Status: Escalated, by <@U1> at …` from the signal's status and its latest history row."""
    words = STATUS_WORDS.get(status, text(status, 40))
    line = f"*Status:* {words}"
    if last_action is not None and getattr(last_action, "actor", "sesguard") != "sesguard":
        line += f", by {mention(last_action.actor)} at {when(last_action.at)}"
    elif last_action is not None and getattr(last_action, "action", "") not in ("", "detected"):
        line += f", at {when(last_action.at)}"
    return line[:CONTEXT_TEXT_LIMIT]


def _calls(signal: Any, call_counts: Mapping[str, int] | None, limit: int = CALLS_LIMIT) -> str:
    if call_counts:
        ordered = sorted(call_counts.items(), key=lambda item: (-item[1], item[0]))
        return listing([f"{name} ×{count}" for name, count in ordered], limit)
    return listing(signal.event_names, limit)


def _bullets(values: list[Any], limit: int, each: int) -> str:
    """`• value` lines within `limit` characters (each value cut to `each`), then how many more."""
    return "• " + listing(values, limit - 2, separator="\n• ", each=each) if values else "-"


def _fields(signal: Any) -> list[str]:
    who = [("Identity (full ARN)", lambda room: text(signal.arn, room))] if signal.arn == signal.identity else [
        ("Identity", lambda room: text(signal.identity, room)), ("Full ARN", lambda room: text(signal.arn, room))]
    return fitted_fields([
        *who,
        ("Account", lambda room: text(signal.account_id, min(room, 100))),
        ("Identity type", lambda room: text(signal.identity_type, min(room, 100))),
        ("First seen", lambda room: when(signal.first_seen)),
        ("Last seen", lambda room: when(signal.last_seen)),
        ("Regions", lambda room: listing(signal.regions, min(room, LIST_FIELD_LIMIT))),
        ("Source IPs", lambda room: listing(signal.source_ips, min(room, LIST_FIELD_LIMIT))),
        ("Access keys", lambda room: listing(signal.access_key_ids, min(room, LIST_FIELD_LIMIT))),
        ("Errors", lambda room: listing(signal.error_codes, min(room, LIST_FIELD_LIMIT))),
    ])


def alert_blocks(signal: Any, call_counts: Mapping[str, int] | None = None, last_action: Any = None,
                 extra: Sequence[Block] = (), context: Sequence[Block] = ()) -> list[Block]:
    """The alert; `extra` (another capability's part, e.g. containment's buttons) goes below the triage buttons,
    `context` (the triage context, SPEC §10) above the triage steps, whose first it answers."""
    severity = str(signal.severity)
    heading = f"{SEVERITY_ICONS.get(severity, '')} *Severity: {text(severity.upper(), 20)}*\n"
    reasons = _bullets(list(signal.reasons), REASONS_LIMIT - len(heading), REASON_LIMIT)
    agents = _bullets(list(signal.user_agents), USER_AGENTS_LIMIT, USER_AGENT_LIMIT)
    calls_heading = f"*API calls* ({int(signal.event_count)}): "
    triage = "\n".join(f"{n}. {step}" for n, step in enumerate(METADATA["triage"], 1))
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f":rotating_light: {METADATA['title']}"[:150])),
        SectionBlock(text=md(heading + reasons)),
        SectionBlock(fields=[md(field) for field in _fields(signal)]),
        SectionBlock(text=md(calls_heading + _calls(signal, call_counts, CALLS_LIMIT - len(calls_heading)))),
        SectionBlock(text=md(f"*User agents*\n{agents}")),
        *context,
        SectionBlock(text=md(f"*Triage steps*\n{triage}"[:SECTION_TEXT_LIMIT])),
        DividerBlock(),
        ContextBlock(elements=[md(status_line(signal.status, last_action))]),
    ]
    buttons = alert_buttons(signal.status, signal.signal_id)
    if buttons:
        blocks.append(ActionsBlock(block_id="triage", elements=buttons))
    blocks.extend(extra)
    mitre = METADATA["mitre"]
    blocks.append(ContextBlock(elements=[md(
        f"Rule {METADATA['id']} · MITRE {mitre['tactic']} / {mitre['technique']} · signal {text(signal.signal_id, 80)}"
    )]))
    return blocks


def alert_buttons(status: str, signal_id: str) -> list[ButtonElement]:
    buttons = []
    for action in buttons_for(status):
        label, style = BUTTON_LABELS[action]
        buttons.append(ButtonElement(text=label, action_id=action.value, value=signal_id, style=style))
    return buttons


def alert_message(signal: Any, call_counts: Mapping[str, int] | None = None, last_action: Any = None,
                  extra: Sequence[Block] = (), context: Sequence[Block] = ()) -> list[dict]:
    """The alert's blocks (SPEC §4) for a stored `SignalRow` or a `Signal`, as Slack's JSON."""
    return dicts(alert_blocks(signal, call_counts, last_action, extra, context))


def alert_text(signal: Any, call_counts: Mapping[str, int] | None = None) -> str:
    """The plain-text fallback (notifications, screen readers, a terminal): escaped like the blocks."""
    lines = [
        f"[{str(signal.severity).upper()}] {METADATA['title']}",
        f"Identity: {text(signal.identity, 300)}",
        f"ARN: {text(signal.arn, 300)}",
        f"Account: {text(signal.account_id, 40)}",
        f"Calls ({int(signal.event_count)}): {_calls(signal, call_counts, 600)}",
        f"Regions: {listing(signal.regions, 300)}",
        f"Source IPs: {listing(signal.source_ips, 300)}",
        f"Seen: {when(signal.first_seen)} to {when(signal.last_seen)}",
        f"Status: {STATUS_WORDS.get(signal.status, text(signal.status, 40))}",
    ]
    lines += [f"Reason: {text(reason, 300)}" for reason in signal.reasons[:10]]
    return "\n".join(lines)[:FALLBACK_TEXT_LIMIT]


def thread_line(action: str, actor: str, detail: str = "") -> str:
    """One line per triage step, e.g. `:arrow_up: Escalated by <@U1>.` Detail is escaped."""
    line = f"{action} by {mention(actor)}." if actor != "sesguard" else f"{action}."
    if detail:
        line += f" {text(detail, 2500)}"
    return line
