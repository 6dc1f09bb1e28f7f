"""The reminder DM and what it becomes once the suppression is extended: pure Block Kit builders."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ContextBlock, SectionBlock

from bot.slack.blocks import dicts, md, mention, text, when
from bot.slack.ids import Action


def _what(suppression: Any) -> str:
    where = f"in account {text(suppression.account_id, 40)}" if suppression.account_id else "in every account"
    return f"*#{suppression.id}* {text(suppression.identity, 600)} {where}"


def duration_words(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def reminder_text(suppression: Any) -> str:
    return f"Suppression #{suppression.id} expires at {when(suppression.expires_at)}"[:3000]


def reminder_message(suppression: Any, reminder_id: int, hits: int, days: float) -> list[dict]:
    return dicts([
        SectionBlock(text=md(
            f":hourglass_flowing_sand: Your suppression {_what(suppression)} expires at "
            f"*{when(suppression.expires_at)}*. It has covered {hits} signal{'' if hits == 1 else 's'}. "
            f"Reason: {text(suppression.reason, 500)}")),
        ActionsBlock(block_id="reminder", elements=[ButtonElement(
            text=f"Extend by {duration_words(days)}"[:75], action_id=Action.EXTEND_SUPPRESSION.value,
            value=str(reminder_id), style="primary")]),
        ContextBlock(elements=[md(f"Nothing to do to let it expire; lift it now with "
                                  f"`/sesguard unsuppress {suppression.id}`.")]),
    ])


def extended_message(suppression: Any, actor: str, hits: int) -> list[dict]:
    return dicts([SectionBlock(text=md(
        f":white_check_mark: Suppression {_what(suppression)} was extended by {mention(actor)}: it now expires "
        f"at *{when(suppression.expires_at)}*. It has covered {hits} signal{'' if hits == 1 else 's'}."))])
