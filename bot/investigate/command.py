"""`/sesguard investigate <arn|access-key-id|ip> [hours]` (SPEC §6): the answer, ephemeral.

An ARN or access key: its CloudTrail activity of the last hours (SESGUARD_INVESTIGATE_HOURS by default),
read and summarised as for an alert, without touching any alert. An IP address: LookupEvents cannot
search by address, so the answer is every stored SES enumeration call from it, across identities (as
`history` answers), and what a SQL engine would add.
"""

from __future__ import annotations

from slack_bolt import BoltContext

from bot.investigate import blocks
from bot.slack.blocks import text
from bot.slack.commands.blocks import history_lines
from detection import subjects
from detection.history import identity_history
from detection.investigate import ADDRESS_NOTE, recent_window
from detection.store import utcnow


def answer(context: BoltContext, user: str, term: str, hours: float | None) -> list[str] | dict:
    """Mrkdwn lines (an address, or a term that is none of the three), or the summary message."""
    settings, store = context["settings"], context["store"]
    kind = subjects.kind_of(term)
    if kind is None:
        return [f"{text(term, 300)} is not an ARN (arn:aws:iam::… or arn:aws:sts::…), an access key ID or an IP "
                "address."]
    if kind == subjects.IP and (settings.athena_table or settings.lake_event_data_store):
        # A SQL engine (SPEC §9) answers with the address's whole traffic, whoever called.
        window = recent_window(hours or settings.investigate_hours, utcnow())
        return blocks.render(context["activity_reader"]().address(term, window), requested_by=user, severity=None)
    if kind == subjects.IP:
        # Without hours, every stored call: the store keeps them SESGUARD_EVENT_RETENTION_DAYS.
        days = hours / 24 if hours else settings.event_retention_days
        found = identity_history(store, term, days=days)
        if found is None:
            return [f"No stored SES enumeration calls from {text(term, 100)} in the last {days:g} days.", ADDRESS_NOTE]
        return history_lines(found) + [ADDRESS_NOTE]
    window = recent_window(hours or settings.investigate_hours, utcnow())
    subject = subjects.for_term(store, term, window, settings.identity_key)
    summary = context["activity_reader"]().investigate(subject, window, [*settings.aws_regions, *subject.regions])
    return blocks.render(summary, requested_by=user, severity=None)
