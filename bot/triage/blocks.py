"""Triage's own Block Kit: the Suppress… modal and the note a click gets when it changes nothing."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
)

from bot.alerts.blocks import STATUS_WORDS
from bot.slack.blocks import md, mention, modal, text, when
from bot.slack.ids import DURATIONS, SCOPE_ACCOUNT, SCOPE_EVERYWHERE, Field, View

DURATION_LABELS = {"1d": "1 day", "7d": "7 days", "30d": "30 days", "never": "No expiry"}


def suppress_modal(signal: Any) -> dict:
    account = text(signal.account_id, 40)
    scopes = [
        Option(value=SCOPE_ACCOUNT, text=f"This identity in account {signal.account_id}"[:75]),
        Option(value=SCOPE_EVERYWHERE, text="This identity in every account"),
    ]
    durations = [Option(value=key, text=DURATION_LABELS[key]) for key in DURATIONS]
    return modal(View.SUPPRESS.value, signal, "Suppress alerts", "Suppress", [
        SectionBlock(text=md(
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


def unchanged(previous_status: str | None, last: Any = None) -> str:
    """Why a click changed nothing (a double click, or a status the action does not apply to)."""
    if previous_status is None:
        return "Nothing was changed: this alert is not known to sesguard."
    words = STATUS_WORDS.get(previous_status, previous_status)
    note = f"Nothing was changed: this alert is already at *{words}*"
    if last is not None and last.actor != "sesguard":
        note += f" ({mention(last.actor)}, {when(last.at)})"
    return note + "."
