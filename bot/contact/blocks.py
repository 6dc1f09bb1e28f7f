"""Contact user's Block Kit: the "was this you?" DM, the DM once closed, and the person picker modal."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    Option,
    SectionBlock,
    UserSelectElement,
)

from bot.slack.blocks import (
    LIST_FIELD_LIMIT,
    dicts,
    listing,
    md,
    mention,
    modal,
    text,
    when,
)
from bot.slack.ids import Action, Field, View


def short_name(signal: Any) -> str:
    """The identity as a line of a DM: escaped and short."""
    return text(signal.identity, 200)


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
        SectionBlock(text=md(intro)),
        SectionBlock(fields=[md(f"*{label}*\n{shown}") for label, shown in fields]),
        ActionsBlock(block_id="answer", elements=[
            ButtonElement(text="Yes, this was me", action_id=Action.ANSWER_YES.value, value=value, style="primary"),
            ButtonElement(text="No, this wasn't me", action_id=Action.ANSWER_NO.value, value=value, style="danger"),
        ]),
    ]
    return dicts(blocks)


def contact_text(signal: Any) -> str:
    return f"Security question: were these AWS SES calls by {short_name(signal)} yours?"


def contact_closed_message(signal: Any, outcome: str) -> list[dict]:
    """The DM once answered or timed out: the question stays readable, the buttons go."""
    return dicts([
        SectionBlock(text=md(f"About the SES calls by {short_name(signal)} in account {text(signal.account_id, 40)}:")),
        ContextBlock(elements=[md(outcome)]),
    ])


def pick_person_modal(signal: Any) -> dict:
    return modal(View.PICK_PERSON.value, signal, "Contact user", "Ask them", [
        SectionBlock(text=md(
            f"No Slack user is known for *{text(signal.identity, 1500)}*. Who should be asked whether "
            f"these calls were theirs?"
        )),
        InputBlock(block_id=Field.PERSON.value, label="Person", element=UserSelectElement(
            action_id=Field.PERSON.value, placeholder="Pick a person")),
        InputBlock(block_id=Field.REMEMBER.value, label="Next time", optional=True, element=CheckboxesElement(
            action_id=Field.REMEMBER.value,
            options=[Option(value="yes", text="Remember this person for this identity")])),
    ])
