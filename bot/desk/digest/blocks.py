"""The figures as lines: `/sesguard stats` and the daily digest share them. Pure, no I/O."""

from __future__ import annotations

from bot.desk.digest.figures import Figures
from bot.slack.blocks import text, when
from detection.signals import SEVERITIES, Status

OUTCOME_WORDS = {Status.NEW.value: "new", Status.CONTACTING.value: "contacting", Status.CONFIRMED.value: "confirmed",
                 Status.ESCALATED.value: "escalated", Status.CLOSED.value: "not an issue",
                 Status.SUPPRESSED.value: "suppressed"}
DIGEST_EVENT_TYPE = "sesguard_digest"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def figure_lines(figures: Figures) -> list[str]:
    severities = ", ".join(f"{figures.by_severity[s]} {s}" for s in reversed(SEVERITIES) if s in figures.by_severity)
    outcomes = ", ".join(f"{count} {OUTCOME_WORDS.get(status, text(status, 20))}"
                         for status, count in sorted(figures.by_outcome.items(), key=lambda item: (-item[1], item[0])))
    rate = f"{figures.answer_rate:.0%}" if figures.answer_rate is not None else "-"
    lines = [
        f"*Signals:* {figures.signals}" + (f" ({severities})" if severities else ""),
        f"*Outcomes:* {outcomes or '-'}",
        f"*Alerts open now:* {figures.open_now}",
        f"*Time to the first triage action:* median {duration(figures.median_seconds)}, 90th percentile "
        f"{duration(figures.p90_seconds)} (over {figures.acted_on} alerts acted on)",
        f"*Contact answer rate:* {rate} ({figures.answered} answered, {figures.timed_out} timed out, "
        f"{figures.waiting} waiting, {figures.undelivered} undelivered)",
    ]
    if figures.top_suppressions:
        lines.append("*Suppressions that covered the most signals:* " + ", ".join(
            f"#{sid} {text(identity, 200)} ({count})" for sid, identity, count in figures.top_suppressions))
    return lines


def stats_lines(figures: Figures, days: float) -> list[str]:
    return [f"*sesguard figures* for the last {days:g} days ({when(figures.since)} to {when(figures.until)})",
            *figure_lines(figures)]


def digest_lines(figures: Figures) -> list[str]:
    return [f":bar_chart: *sesguard daily digest*: {when(figures.since)} to {when(figures.until)}",
            *figure_lines(figures), "_`/sesguard stats [days]` answers the same for any period._"]
