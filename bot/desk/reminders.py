"""The reminder outbox: a DM to a suppression's author before it expires, sent once.

A suppression with an expiry is due a day before it (half its duration before, when it lasts a day or
less): `enqueue_due` inserts its row, unique per (suppression, expiry), so any number of processes and
passes make one. `send_pending` claims each row with one conditional `UPDATE` (two workers never both
send it), and a row whose earlier attempt failed in a way that may have reached Slack is looked for in the
DM's history by its message metadata before it is sent again: after a crash or a lost answer, no second
DM. A suppression lifted, extended or expired before its reminder went is not reminded (`dropped`). A
suppression with no expiry is never reminded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.slack.history import find_by_metadata
from bot.store.outbox import Outbox, holder_name
from bot.triage.suppressions import blocks
from bot.triage.suppressions.tables import SuppressionReminder
from detection.store import Store, SuppressionRow, utcnow

log = logging.getLogger(__name__)

LEAD = timedelta(days=1)
REMINDER_EVENT_TYPE = "sesguard_suppression_reminder"
HISTORY_PAGES = 5


@dataclass
class Reminded:
    sent: int = 0
    found: int = 0  # sent by an earlier attempt whose answer was lost
    dropped: int = 0
    failed: int = 0


def duration_days(suppression: SuppressionRow) -> float | None:
    """The suppression's own duration: as made (1, 7, 30 days), or for an older row its first span."""
    if suppression.duration_days:
        return suppression.duration_days
    if suppression.expires_at is None:
        return None
    return (suppression.expires_at - suppression.created_at).total_seconds() / 86400


def lead(suppression: SuppressionRow) -> timedelta:
    days = duration_days(suppression)
    return min(LEAD, timedelta(days=days) / 2) if days else LEAD


def enqueue_due(store: Store, now: datetime | None = None) -> None:
    """A reminder row for every active suppression due one (an existing row is kept as it is)."""
    now = now or utcnow()
    with store.session() as session:
        candidates = session.exec(select(SuppressionRow).where(
            col(SuppressionRow.lifted_at).is_(None), col(SuppressionRow.expires_at).is_not(None),
            col(SuppressionRow.expires_at) > now, col(SuppressionRow.expires_at) <= now + LEAD)).all()
        due = [row for row in candidates if row.expires_at is not None and row.expires_at - lead(row) <= now]
        store.insert_ignoring_duplicates(session, SuppressionReminder, [
            {"suppression_id": row.id, "expires_at": row.expires_at, "author": row.author, "created_at": now,
             "attempts": 0, "dropped": False} for row in due])
        session.commit()


def _unsent(now: datetime) -> list:
    return [col(SuppressionReminder.sent_at).is_(None), col(SuppressionReminder.dropped).is_(False)]


REMINDERS = Outbox(SuppressionReminder, col(SuppressionReminder.id), col(SuppressionReminder.claimed_by),
                   col(SuppressionReminder.claimed_until), col(SuppressionReminder.attempts), _unsent)


def metadata(reminder_id: int) -> dict:
    return {"event_type": REMINDER_EVENT_TYPE, "event_payload": {"reminder_id": reminder_id}}


def find_sent(client: WebClient, channel: str, reminder: SuppressionReminder) -> str | None:
    """The ts of this reminder if an earlier attempt already put it in the DM."""
    return find_by_metadata(client, channel, reminder.created_at - timedelta(minutes=5), REMINDER_EVENT_TYPE,
                            "reminder_id", reminder.id, HISTORY_PAGES)


def send_pending(store: Store, client: WebClient, holder: str | None = None,
                now: datetime | None = None) -> Reminded:
    """Send every reminder due (after `enqueue_due`). Slack trouble leaves the row for the next pass."""
    holder = holder or holder_name()  # a test plays several processes by naming them
    now = now or utcnow()
    result = Reminded()
    with store.session() as session:
        waiting = session.exec(select(SuppressionReminder.id).where(
            col(SuppressionReminder.sent_at).is_(None), col(SuppressionReminder.dropped).is_(False))
            .order_by(col(SuppressionReminder.expires_at))).all()
    for reminder_id in waiting:
        if reminder_id is None:  # a primary key: never NULL
            continue
        reminder = REMINDERS.claim(store, reminder_id, holder, now)
        if reminder is None:
            continue  # another process has it, or sent it
        with store.session() as session:
            suppression = session.get(SuppressionRow, reminder.suppression_id)
        days = duration_days(suppression) if suppression is not None else None
        if (suppression is None or suppression.lifted_at is not None or suppression.expires_at != reminder.expires_at
                or reminder.expires_at <= now or days is None):
            REMINDERS.release(store, reminder_id, holder, dropped=True)
            result.dropped += 1
            continue
        try:
            dm = client.conversations_open(users=reminder.author)["channel"]["id"]
            ts = find_sent(client, dm, reminder) if reminder.attempts > 1 else None
            found = ts is not None
            if not found:
                hits = store.suppression_hits([reminder.suppression_id]).get(reminder.suppression_id, 0)
                ts = client.chat_postMessage(
                    channel=dm, text=blocks.reminder_text(suppression), metadata=metadata(reminder_id),
                    blocks=blocks.reminder_message(suppression, reminder_id, hits, days),
                    unfurl_links=False, unfurl_media=False)["ts"]
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("the reminder of suppression #%s was not sent (%s); tried again later", suppression.id, error)
            REMINDERS.release(store, reminder_id, holder)
            result.failed += 1
            if error in ("user_not_found", "cannot_dm_bot", "user_disabled"):
                _drop(store, reminder_id)  # nobody to remind: it would fail for ever
            continue
        except Exception as exc:  # unreachable Slack: the pass stops, the row waits (its attempt counted)
            log.warning("the reminder of suppression #%s was not sent (%s); tried again later", suppression.id,
                        type(exc).__name__)
            REMINDERS.release(store, reminder_id, holder)
            result.failed += 1
            break
        REMINDERS.release(store, reminder_id, holder, sent_at=now, dm_channel=dm, dm_ts=ts)
        result.found += found
        result.sent += not found
    return result


def _drop(store: Store, reminder_id: int) -> None:
    with store.session() as session:
        session.execute(sa.update(SuppressionReminder).where(col(SuppressionReminder.id) == reminder_id)
                        .values(dropped=True))
        session.commit()


def remind(store: Store, client: WebClient, holder: str | None = None,
                now: datetime | None = None) -> Reminded:
    """The worker's job: the due reminders made, then sent."""
    enqueue_due(store, now)
    return send_pending(store, client, holder, now)
