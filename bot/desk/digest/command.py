"""`/sesguard stats [days]`: the triage figures of the last `days` (default 7)."""

from __future__ import annotations

from slack_bolt import BoltContext

from bot.desk.digest.blocks import stats_lines
from bot.desk.digest.figures import figures
from bot.slack.numbers import ascii_decimal

DEFAULT_DAYS = 7.0
MAX_DAYS = 3650.0


def answer(context: BoltContext, args: list[str]) -> list[str]:
    days = DEFAULT_DAYS if not args else ascii_decimal(args[0]) if len(args) == 1 else None
    if days is None or not 0 < days <= MAX_DAYS:
        return [f"Usage: `/sesguard stats [days]`, days a number between 0 and {MAX_DAYS:g} (default {DEFAULT_DAYS:g})"]
    return stats_lines(figures(context["store"], days), days)
