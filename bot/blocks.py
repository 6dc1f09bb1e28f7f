"""Block Kit for every message and modal the app sends: pure functions, no I/O.

Built with slack-sdk's Block Kit models, whose `to_dict()` validates Slack's limits, so a message that
Slack would reject fails here, in a test, instead of in the channel.

Every value that came from CloudTrail is attacker-controlled. `text()` is the one way such a value
enters a message: control and bidi characters become `?`, `&`, `<` and `>` are escaped (so no
`<!channel>`, `<@U…>` or `<https://evil|click>` survives), and the result is cut to fit. Text objects
carrying such values are `verbatim`, so Slack does not turn bare URLs or channel names into links.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
    UserSelectElement,
)
from slack_sdk.models.views import View as ModalView

from bot.ids import DURATIONS, SCOPE_ACCOUNT, SCOPE_EVERYWHERE, Action, Field, Status, View
from detection.rule import METADATA

# Slack's limits (https://api.slack.com/reference/block-kit/blocks), with room to spare where we join parts.
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
FALLBACK_TEXT_LIMIT = 3000  # `text` may be 40,000, but a notification only shows the start
# Long lists (a burst from hundreds of IPs) are shown in part; the store keeps them all.
LIST_FIELD_LIMIT = 600
USER_AGENT_LIMIT = 300
USER_AGENTS_SHOWN = 5
ELLIPSIS = "…"

SEVERITY_ICONS = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_yellow_circle:"}

STATUS_WORDS = {
    Status.NEW: "New: waiting for triage",
    Status.CONTACTING: "Waiting for the person's answer",
    Status.CONFIRMED: "The person confirmed it was them",
    Status.ESCALATED: "Escalated",
    Status.CLOSED: "Closed: not an issue",
    Status.SUPPRESSED: "Suppressed",
}

# The buttons that still apply in each state (SPEC §4: "buttons that still apply").
BUTTONS_BY_STATUS: dict[str, tuple[Action, ...]] = {
    Status.NEW: (Action.ESCALATE, Action.CONTACT_USER, Action.SUPPRESS, Action.NOT_AN_ISSUE),
    Status.CONTACTING: (Action.ESCALATE, Action.SUPPRESS, Action.NOT_AN_ISSUE),
    Status.CONFIRMED: (Action.ESCALATE, Action.SUPPRESS, Action.NOT_AN_ISSUE),
    Status.ESCALATED: (Action.CONTACT_USER, Action.SUPPRESS, Action.NOT_AN_ISSUE),
    Status.CLOSED: (Action.SUPPRESS,),
    Status.SUPPRESSED: (),
}
BUTTON_LABELS = {
    Action.ESCALATE: ("Escalate", "danger"),
    Action.CONTACT_USER: ("Contact user", None),
    Action.SUPPRESS: ("Suppress…", None),
    Action.NOT_AN_ISSUE: ("Not an issue", "primary"),
}
DURATION_LABELS = {"1d": "1 day", "7d": "7 days", "30d": "30 days", "never": "No expiry"}

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


# ── safe text ────────────────────────────────────────────────────────────────────────────────────────


def _visible(ch: str) -> str:
    # Cc: control characters (newlines break the layout); Cf: bidi overrides and zero-width characters
    # that make one text look like another.
    return "?" if unicodedata.category(ch) in ("Cc", "Cf") else ch


def escape(value: Any) -> str:
    """A CloudTrail value as inert mrkdwn: only `&`, `<` and `>` are special to Slack."""
    raw = "".join(_visible(ch) for ch in str(value))
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(value: Any, limit: int) -> str:
    """`escape(value)`, cut so that the escaped text (ellipsis included) fits `limit` characters.

    Cut on the raw value, never inside an entity such as `&amp;`.
    """
    escaped = escape(value)
    if len(escaped) <= limit:
        return escaped
    out, length = [], 0
    for ch in str(value):
        piece = escape(ch)
        if length + len(piece) > limit - len(ELLIPSIS):
            break
        out.append(piece)
        length += len(piece)
    return "".join(out) + ELLIPSIS


def listing(values: Iterable[Any], limit: int, separator: str = ", ") -> str:
    """Escaped values joined while they fit in `limit`, then how many more there were."""
    values = [v for v in values if v not in (None, "")]
    if not values:
        return "-"
    room = max(limit - 20, 10)  # keeps space for ", … 123456 more"
    shown: list[str] = []
    length = 0
    for index, value in enumerate(values):
        piece = text(value, room)
        added = len(piece) + (len(separator) if shown else 0)
        more = len(values) - index - 1
        if length + added + (len(f"{separator}… {more} more") if more else 0) > limit:
            break
        shown.append(piece)
        length += added
    rest = len(values) - len(shown)
    if not rest:
        return separator.join(shown)
    return separator.join(shown + [f"… {rest} more"])


def mention(user_id: Any) -> str:
    """`<@U…>` for a well-formed Slack user ID; anything else is shown as escaped text."""
    return f"<@{user_id}>" if isinstance(user_id, str) and _USER_ID.match(user_id) else escape(user_id)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _md(value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=value, verbatim=True)


def _dicts(blocks: Sequence[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]  # to_dict() validates Slack's limits


# ── the alert ────────────────────────────────────────────────────────────────────────────────────────


def status_line(status: str, last_action: Any = None) -> str:
    """`Status: Escalated, by <@U1> at …` from the signal's status and its latest history row."""
    words = STATUS_WORDS.get(status, text(status, 40))
    line = f"*Status:* {words}"
    if last_action is not None and getattr(last_action, "actor", "sesguard") != "sesguard":
        line += f", by {mention(last_action.actor)} at {when(last_action.at)}"
    elif last_action is not None and getattr(last_action, "action", "") not in ("", "detected"):
        line += f", at {when(last_action.at)}"
    return line


def _calls(signal: Any, call_counts: Mapping[str, int] | None) -> str:
    if call_counts:
        ordered = sorted(call_counts.items(), key=lambda item: (-item[1], item[0]))
        return listing([f"{name} ×{count}" for name, count in ordered], SECTION_TEXT_LIMIT - 100)
    return listing(signal.event_names, SECTION_TEXT_LIMIT - 100)


def alert_blocks(signal: Any, call_counts: Mapping[str, int] | None = None, last_action: Any = None) -> list[Block]:
    severity = str(signal.severity)
    reasons = "\n".join(f"• {text(reason, 400)}" for reason in signal.reasons[:10])
    agents = signal.user_agents[:USER_AGENTS_SHOWN]
    more_agents = len(signal.user_agents) - len(agents)
    agent_lines = "\n".join(f"• {text(agent, USER_AGENT_LIMIT)}" for agent in agents) or "-"
    if more_agents > 0:
        agent_lines += f"\n… {more_agents} more"
    who = [("Identity (full ARN)", text(signal.arn, LIST_FIELD_LIMIT))] if signal.arn == signal.identity else [
        ("Identity", text(signal.identity, LIST_FIELD_LIMIT)), ("Full ARN", text(signal.arn, LIST_FIELD_LIMIT))]
    fields = [
        *who,
        ("Account", text(signal.account_id, 100)),
        ("Identity type", text(signal.identity_type, 100)),
        ("First seen", when(signal.first_seen)),
        ("Last seen", when(signal.last_seen)),
        ("Regions", listing(signal.regions, LIST_FIELD_LIMIT)),
        ("Source IPs", listing(signal.source_ips, LIST_FIELD_LIMIT)),
        ("Access keys", listing(signal.access_key_ids, LIST_FIELD_LIMIT)),
        ("Errors", listing(signal.error_codes, LIST_FIELD_LIMIT)),
    ]
    triage = "\n".join(f"{n}. {step}" for n, step in enumerate(METADATA["triage"], 1))
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f":rotating_light: {METADATA['title']}"[:150])),
        SectionBlock(text=_md(
            f"{SEVERITY_ICONS.get(severity, '')} *Severity: {text(severity.upper(), 20)}*\n{reasons}"
        )),
        SectionBlock(fields=[_md(f"*{label}*\n{value}") for label, value in fields]),
        SectionBlock(text=_md(f"*API calls* ({int(signal.event_count)}): {_calls(signal, call_counts)}")),
        SectionBlock(text=_md(f"*User agents*\n{agent_lines}")),
        SectionBlock(text=_md(f"*Triage steps*\n{triage}"[:SECTION_TEXT_LIMIT])),
        DividerBlock(),
        ContextBlock(elements=[_md(status_line(signal.status, last_action))]),
    ]
    buttons = alert_buttons(signal.status, signal.signal_id)
    if buttons:
        blocks.append(ActionsBlock(block_id="triage", elements=buttons))
    mitre = METADATA["mitre"]
    blocks.append(ContextBlock(elements=[_md(
        f"Rule {METADATA['id']} · MITRE {mitre['tactic']} / {mitre['technique']} · signal {text(signal.signal_id, 80)}"
    )]))
    return blocks


def alert_buttons(status: str, signal_id: str) -> list[ButtonElement]:
    buttons = []
    for action in BUTTONS_BY_STATUS.get(status, ()):
        label, style = BUTTON_LABELS[action]
        buttons.append(ButtonElement(text=label, action_id=action.value, value=signal_id, style=style))
    return buttons


def alert_message(signal: Any, call_counts: Mapping[str, int] | None = None, last_action: Any = None) -> list[dict]:
    """The alert's blocks (SPEC §4) for a stored `SignalRow` or a `Signal`, as Slack's JSON."""
    return _dicts(alert_blocks(signal, call_counts, last_action))


def alert_text(signal: Any, call_counts: Mapping[str, int] | None = None) -> str:
    """The plain-text fallback (notifications, screen readers, a terminal): escaped like the blocks."""
    lines = [
        f"[{str(signal.severity).upper()}] {METADATA['title']}",
        f"Identity: {text(signal.identity, 300)}",
        f"ARN: {text(signal.arn, 300)}",
        f"Account: {text(signal.account_id, 40)}",
        f"Calls ({int(signal.event_count)}): {_calls(signal, call_counts)[:600]}",
        f"Regions: {listing(signal.regions, 300)}",
        f"Source IPs: {listing(signal.source_ips, 300)}",
        f"Seen: {when(signal.first_seen)} to {when(signal.last_seen)}",
        f"Status: {STATUS_WORDS.get(signal.status, text(signal.status, 40))}",
    ]
    lines += [f"Reason: {text(reason, 300)}" for reason in signal.reasons[:10]]
    return "\n".join(lines)[:FALLBACK_TEXT_LIMIT]


def short_name(signal: Any) -> str:
    """The identity as a line of a thread or a DM: escaped and short."""
    return text(signal.identity, 200)


# ── lines in the alert's thread ─────────────────────────────────────────────────────────────────────


def thread_line(action: str, actor: str, detail: str = "", channel_mention: bool = False) -> str:
    """One line per triage step, e.g. `:arrow_up: Escalated by <@U1>.` Detail is escaped."""
    prefix = "<!channel> " if channel_mention else ""
    line = f"{prefix}{action} by {mention(actor)}." if actor != "sesguard" else f"{prefix}{action}."
    if detail:
        line += f" {text(detail, 2500)}"
    return line


# ── contacting the person ────────────────────────────────────────────────────────────────────────────


def contact_message(signal: Any, contact_id: int, asked_by: str) -> list[dict]:
    """The DM: what happened, in words a non-specialist follows, and the two answers."""
    intro = (
        f"Hi! {mention(asked_by)} from the security team asks about AWS activity that sesguard noticed. "
        f"Someone using the identity below listed this account's Amazon SES (e-mail sending) settings. "
        f"If it was you, just say so; if not, please tell us right away."
    )
    fields = [
        ("Identity", text(signal.identity, LIST_FIELD_LIMIT)),
        ("Account", text(signal.account_id, 100)),
        ("When", f"{when(signal.first_seen)} to {when(signal.last_seen)}"),
        ("Calls", listing(signal.event_names, LIST_FIELD_LIMIT)),
        ("Source IPs", listing(signal.source_ips, LIST_FIELD_LIMIT)),
        ("Regions", listing(signal.regions, LIST_FIELD_LIMIT)),
    ]
    value = str(contact_id)
    blocks: list[Block] = [
        SectionBlock(text=_md(intro)),
        SectionBlock(fields=[_md(f"*{label}*\n{shown}") for label, shown in fields]),
        ActionsBlock(block_id="answer", elements=[
            ButtonElement(text="Yes, this was me", action_id=Action.ANSWER_YES.value, value=value, style="primary"),
            ButtonElement(text="No, this wasn't me", action_id=Action.ANSWER_NO.value, value=value, style="danger"),
        ]),
    ]
    return _dicts(blocks)


def contact_text(signal: Any) -> str:
    return f"Security question: were these AWS SES calls by {short_name(signal)} yours?"


def contact_closed_message(signal: Any, outcome: str) -> list[dict]:
    """The DM once answered or timed out: the question stays readable, the buttons go."""
    return _dicts([
        SectionBlock(text=_md(f"About the SES calls by {short_name(signal)} in account {text(signal.account_id, 40)}:")),
        ContextBlock(elements=[_md(outcome)]),
    ])


# ── modals ───────────────────────────────────────────────────────────────────────────────────────────


def suppress_modal(signal: Any) -> dict:
    account = text(signal.account_id, 40)
    scopes = [
        Option(value=SCOPE_ACCOUNT, text=f"This identity in account {signal.account_id}"[:75]),
        Option(value=SCOPE_EVERYWHERE, text="This identity in every account"),
    ]
    durations = [Option(value=key, text=DURATION_LABELS[key]) for key in DURATIONS]
    return _modal(View.SUPPRESS, signal, "Suppress alerts", "Suppress", [
        SectionBlock(text=_md(
            f"Future alerts for *{text(signal.identity, 1500)}* will be stored but not posted "
            f"(account {account}). Suppressions are audited; lift one with `/sesguard unsuppress &lt;id&gt;`."
        )),
        InputBlock(block_id=Field.SCOPE.value, label="Scope", element=RadioButtonsElement(
            action_id=Field.SCOPE.value, options=scopes, initial_option=scopes[0])),
        InputBlock(block_id=Field.DURATION.value, label="Duration", element=RadioButtonsElement(
            action_id=Field.DURATION.value, options=durations, initial_option=durations[1])),
        InputBlock(block_id=Field.REASON.value, label="Reason", element=PlainTextInputElement(
            action_id=Field.REASON.value, multiline=True, min_length=3, max_length=500,
            placeholder="Why these calls are expected, e.g. the ticket of the pen-test")),
    ])


def _modal(callback: View, signal: Any, title: str, submit: str, body: list[Block]) -> dict:
    """A modal about one signal: its ID rides along in private_metadata (re-read from the store on submit)."""
    return ModalView(type="modal", callback_id=callback.value, private_metadata=signal.signal_id, title=title,
                     submit=submit, close="Cancel", blocks=body).to_dict()


def pick_person_modal(signal: Any) -> dict:
    return _modal(View.PICK_PERSON, signal, "Contact user", "Ask them", [
        SectionBlock(text=_md(
            f"No Slack user is known for *{text(signal.identity, 1500)}*. Who should be asked whether "
            f"these calls were theirs?"
        )),
        InputBlock(block_id=Field.PERSON.value, label="Person", element=UserSelectElement(
            action_id=Field.PERSON.value, placeholder="Pick a person")),
        InputBlock(block_id=Field.REMEMBER.value, label="Next time", optional=True, element=CheckboxesElement(
            action_id=Field.REMEMBER.value,
            options=[Option(value="yes", text="Remember this person for this identity")])),
    ])


# ── /sesguard answers ────────────────────────────────────────────────────────────────────────────────

HELP_TEXT = "\n".join([
    "*`/sesguard`* — SES enumeration alerts",
    "• `/sesguard history &lt;arn|name|ip&gt; [days]` — the identity's SES calls, signals and outcomes (default 90 days)",
    "• `/sesguard suppressions` — active suppressions",
    "• `/sesguard unsuppress &lt;id&gt;` — lift a suppression",
    "• `/sesguard map &lt;arn&gt; &lt;@user&gt;` — who to ask about an identity",
    "• `/sesguard status` — last poll, lag and errors per account and region",
    "• `/sesguard help` — this text",
])


def text_blocks(lines: Sequence[str]) -> list[dict]:
    """Already-escaped mrkdwn lines as sections, split within Slack's limits (at most 50 blocks)."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        line = line[:SECTION_TEXT_LIMIT]
        if chunk and len(chunk) + 1 + len(line) > SECTION_TEXT_LIMIT:
            blocks.append(SectionBlock(text=_md(chunk)))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(SectionBlock(text=_md(chunk)))
    return _dicts(blocks[:50])


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


def suppression_line(row: Any) -> str:
    where = f"account {text(row.account_id, 20)}" if row.account_id else "every account"
    if row.source_cidr:
        where += f", from {text(row.source_cidr, 50)}"
    expiry = f"until {when(row.expires_at)}" if row.expires_at else "no expiry"
    return (
        f"• *#{row.id}* {text(row.identity, 400)} in {where}, {expiry}; by {mention(row.author)} "
        f"at {when(row.created_at)}: {text(row.reason, 500)}"
    )
