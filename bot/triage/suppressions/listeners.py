"""The reminder's Extend button (triagers only): the suppression lasts its own duration longer, once.

The button names its reminder; the reminder says which expiry it was sent for. The suppression is
extended only while it still has that expiry (a second click, or a click after another extension, finds
it moved and changes nothing), is not lifted and has not expired. Audited like every suppression change.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlmodel import Session, col

from bot.desk.reminders import duration_days
from bot.slack.blocks import mention, when
from bot.slack.ids import Action
from bot.slack.middleware import clicked, triagers_only
from bot.slack.numbers import ascii_id
from bot.slack.replies import actor_of, tell
from bot.triage.suppressions import blocks
from bot.triage.suppressions.tables import SuppressionReminder
from detection.store import AuditEntry, Store, SuppressionRow, get_stored, row_id, utcnow


def register(app: App) -> None:
    app.action(Action.EXTEND_SUPPRESSION.value, middleware=[triagers_only])(extend_suppression)


def extend(store: Store, reminder_id: int, actor: str) -> tuple[SuppressionRow | None, str]:
    """(the extended suppression, "") or (None, why nothing changed)."""
    now = utcnow()
    with store.session() as session:
        reminder = session.get(SuppressionReminder, reminder_id)
        if reminder is None:
            return None, "This reminder is not known to sesguard. Nothing was changed."
        # the row lock first (as every triage change), then decide on what is stored
        session.execute(sa.update(SuppressionRow).where(col(SuppressionRow.id) == reminder.suppression_id)
                        .values(lifted_at=SuppressionRow.lifted_at))
        row = session.get(SuppressionRow, reminder.suppression_id, populate_existing=True)
        if row is None or row.lifted_at is not None:
            return _unchanged(session, f"Suppression #{reminder.suppression_id} was lifted. Nothing was changed.")
        expires_at, days = row.expires_at, duration_days(row)
        if expires_at is None or days is None or expires_at != reminder.expires_at:  # a reminder has an expiry
            return _unchanged(session, f"Suppression #{row.id} was extended already; it expires at {when(expires_at)}. "
                                       f"Nothing was changed.")
        if expires_at <= now:
            return _unchanged(session, f"Suppression #{row.id} expired at {when(expires_at)}. Nothing was changed.")
        row.expires_at = expires_at + timedelta(days=days)
        session.add(row)
        session.add(AuditEntry(actor=actor, action="suppression extended", subject=row.identity, at=now,
                               detail=f"suppression #{row.id} by {days:g} days, until {when(row.expires_at)}"))
        reminder = get_stored(session, SuppressionReminder, reminder_id)
        reminder.extended_by, reminder.extended_at = actor, now
        session.add(reminder)
        session.commit()
        return row, ""


def _unchanged(session: Session, why: str) -> tuple[None, str]:
    session.rollback()
    return None, why


def extend_suppression(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    store, user = context["store"], actor_of(body)
    reminder_id = ascii_id(str(clicked(body).get("value") or ""))
    if reminder_id is None:
        tell(client, body, "This reminder is not known to sesguard. Nothing was changed.")
        return
    row, problem = extend(store, reminder_id, user)
    if row is None:
        tell(client, body, problem)
        return
    with store.session() as session:
        reminder = get_stored(session, SuppressionReminder, reminder_id)
    hits = store.suppression_hits([row_id(row)]).get(row_id(row), 0)
    if reminder.dm_channel and reminder.dm_ts:
        client.chat_update(channel=reminder.dm_channel, ts=reminder.dm_ts,
                           blocks=blocks.extended_message(row, user, hits),
                           text=f"Suppression #{row.id} extended until {when(row.expires_at)}")
    if user != row.author:
        tell(client, body, f"Extended suppression #{row.id} of {mention(row.author)} until {when(row.expires_at)}.")
