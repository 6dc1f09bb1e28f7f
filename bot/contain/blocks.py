"""Containment's Block Kit, pure builders: the buttons on the alert, each with Slack's confirmation dialog
saying exactly what will change; why a button is not offered; the results so far; the thread lines.

A button is shown only when its action applies: to the kind of identity (an IAM user with long-term
keys, an assumed role that is not IAM Identity Center's), in the signal's status (`triage.states`), and
to names that pass `bot.contain.names` (a forged one gets a note saying why, never a button).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    PlainTextObject,
)

from bot.alerts.blocks import thread_line
from bot.contain import access_key, names, role_sessions
from bot.contain.action import ALREADY, DONE, FAILED, Confirmation, Outcome
from bot.slack.blocks import md, mention, text, when
from bot.slack.ids import Action
from bot.triage.states import applies

# Each containment button and the module that carries it out.
MODULES = {Action.DEACTIVATE_ACCESS_KEY: access_key, Action.REVOKE_ROLE_SESSIONS: role_sessions}
LABELS = {Action.DEACTIVATE_ACCESS_KEY: "Deactivate access key", Action.REVOKE_ROLE_SESSIONS: "Revoke role sessions"}
# Every history action containment writes, and the outcome it stands for: the alert lists them, and
# they never stand for its status.
OUTCOME_OF = {name: kind for module in MODULES.values()
              for kind, name in zip((DONE, ALREADY, FAILED), module.HISTORY, strict=True)}
HISTORY_ACTIONS = frozenset(OUTCOME_OF)
ICONS = {DONE: ":lock:", ALREADY: ":information_source:", FAILED: ":x:"}
RESULTS_SHOWN = 5
IDENTITY_CENTER_NOTE = ("Revoke role sessions is not offered: IAM Identity Center's roles cannot be changed in IAM; "
                        "revoke the person's active sessions in IAM Identity Center.")


def containment_blocks(signal: Any, results: Sequence[Any] = ()) -> list[Block]:
    """The alert's containment part (with SESGUARD_RESPONSE_ACTIONS): the results so far (history rows,
    oldest first), notes on buttons not offered, and the buttons that apply."""
    lines = [_result_line(step) for step in results[-RESULTS_SHOWN:]]
    buttons = []
    for action, module in MODULES.items():
        if not applies(action, signal.status):
            continue
        if not module.applies(signal):
            if action is Action.REVOKE_ROLE_SESSIONS and signal.identity_type == "AssumedRole":
                lines.append(f":information_source: {IDENTITY_CENTER_NOTE}")
            continue
        try:
            target = module.target(signal)
        except names.Refused as refused:
            lines.append(f":warning: {LABELS[action]} is not offered: {text(refused, 600)}.")
            continue
        buttons.append(button(action, signal.signal_id, module.confirmation(target)))
    blocks: list[Block] = []
    if lines:
        blocks.append(ContextBlock(block_id="containment", elements=[md(line) for line in lines[:10]]))
    if buttons:
        blocks.append(ActionsBlock(block_id="respond", elements=buttons))
    return blocks


def button(action: Action, signal_id: str, confirmation: Confirmation) -> ButtonElement:
    """A containment button; Slack asks for the confirmation before it sends the click."""
    return ButtonElement(
        text=LABELS[action], action_id=action.value, value=signal_id, style="danger",
        confirm=ConfirmObject(title=confirmation.title, text=PlainTextObject(text=confirmation.text, emoji=False),
                              confirm=confirmation.confirm, deny="Cancel", style="danger"),
    )


def _result_line(step: Any) -> str:
    icon = ICONS[OUTCOME_OF.get(step.action, FAILED)]
    return f"{icon} {text(_capitalised(step.action), 80)} by {mention(step.actor)} at {when(step.at)}"


def result_line(history_action: str, outcome: Outcome, actor: str) -> str:
    """The thread line of an attempt, e.g. `:lock: Access key deactivated by <@U1>. AKIA… is now Inactive.`"""
    icon = ICONS[outcome.kind]
    return thread_line(f"{icon} {text(_capitalised(history_action), 80)}", actor, outcome.detail)


def _capitalised(words: str) -> str:
    return words[:1].upper() + words[1:]
