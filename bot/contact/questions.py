"""Contact user: ask the person behind an identity in a DM, take their answer, time out.

Only the person asked may answer. "No" escalates with a channel mention; so does silence past
`SESGUARD_CONTACT_TIMEOUT_MINUTES` (`escalate_overdue`, run by the worker's scheduler).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from slack_sdk import WebClient
from sqlmodel import col, select

from bot.alerts.blocks import thread_line
from bot.alerts.message import post_in_thread, refresh_alert
from bot.config.business_hours import contact_deadline
from bot.config.settings import Settings
from bot.contact import blocks
from bot.contact.tables import Contact
from bot.slack.blocks import mention, text, when
from bot.slack.client import slack_client
from bot.slack.ids import Action
from bot.slack.numbers import ascii_id
from bot.triage.changes import lock_signal, lock_stored_signal, record, unlock
from bot.triage.states import applies
from detection.signals import Status
from detection.store import SignalRow, Store, get_stored, row_id, utcnow

log = logging.getLogger(__name__)

YES, NO, TIMEOUT, UNDELIVERED = "yes", "no", "timeout", "undelivered"


@dataclass
class Asked:
    contact: Contact | None  # None: the signal is gone or its state does not allow contacting
    new: bool  # False: someone was already asked and has not answered yet
    signal: SignalRow | None = None


def open_contact(store: Store, signal_id: str) -> Contact | None:
    with store.session() as session:
        return session.exec(
            select(Contact).where(col(Contact.signal_id) == signal_id, col(Contact.answer).is_(None))
            .order_by(col(Contact.id).desc())
        ).first()


def ask(store: Store, settings: Settings, client: WebClient, signal_id: str, person: str, asked_by: str,
        now: datetime | None = None) -> Asked:
    """DM `person` the question, once: a second click while a question is open asks nobody."""
    now = now or utcnow()
    with store.session() as session:
        row = lock_signal(session, signal_id)
        if row is None or not applies(Action.CONTACT_USER, row.status):
            unlock(session)
            return Asked(None, False, row)
        waiting = session.exec(
            select(Contact).where(col(Contact.signal_id) == signal_id, col(Contact.answer).is_(None))).first()
        if waiting is not None:
            unlock(session)
            return Asked(waiting, False, row)
        contact = Contact(signal_id=signal_id, slack_user_id=person, asked_by=asked_by, asked_at=now,
                          deadline=contact_deadline(settings.business_hours, now, settings.contact_timeout_minutes))
        session.add(contact)
        previous = row.status
        # From "escalated" the status stays: asking the person does not undo an escalation.
        record(session, row, asked_by, f"contacted {person}", Status.CONTACTING if previous == Status.NEW else previous,
               now=now)
        session.commit()
    try:
        dm = client.conversations_open(users=person)["channel"]["id"]
        sent = client.chat_postMessage(channel=dm, text=blocks.contact_text(row),
                                       blocks=blocks.contact_message(row, row_id(contact), asked_by),
                                       unfurl_links=False, unfurl_media=False)
    except Exception as exc:
        _undelivered(store, contact, previous, asked_by, exc)
        raise
    with store.session() as session:
        session.execute(sa.update(Contact).where(col(Contact.id) == contact.id).values(dm_channel=dm, dm_ts=sent["ts"]))
        session.commit()
    contact.dm_channel, contact.dm_ts = dm, sent["ts"]
    row = refresh_alert(store, client, signal_id, settings) or row
    post_in_thread(store, client, row.signal_id, thread_line(
        f":speech_balloon: Asked {mention(person)} whether these calls were theirs "
        f"(escalates without an answer within {_timeout_words(settings)}, at {when(contact.deadline)}); asked",
        asked_by))
    return Asked(contact, True, row)


def _timeout_words(settings: Settings) -> str:
    minutes = f"{settings.contact_timeout_minutes:g} minutes"
    return f"{minutes} of business hours ({text(settings.business_hours, 80)})" if settings.business_hours else minutes


def _undelivered(store: Store, contact: Contact, previous: str, actor: str, error: Exception) -> None:
    """The DM could not be sent: close the question and put the status back."""
    with store.session() as session:
        row = lock_stored_signal(session, contact.signal_id)
        stored = get_stored(session, Contact, contact.id)
        stored.answer, stored.answered_at = UNDELIVERED, utcnow()
        session.add(stored)
        record(session, row, actor, "contact failed", previous, detail=type(error).__name__)
        session.commit()


@dataclass
class Answered:
    accepted: bool
    message: str  # for the person who clicked (ephemeral)


def answer(store: Store, settings: Settings, client: WebClient, contact_id: str, user_id: str, reply: str) -> Answered:
    """The contacted person's Yes or No. Anyone else, or a second answer, changes nothing."""
    key = ascii_id(contact_id)
    if key is None:
        return Answered(False, "This question is not known.")
    now = utcnow()
    with store.session() as session:
        question = session.get(Contact, key)
        if question is None:
            return Answered(False, "This question is not known.")
        if question.slack_user_id != user_id:
            return Answered(False, f"Only {mention(question.slack_user_id)} can answer this question.")
        row = lock_stored_signal(session, question.signal_id)
        question = get_stored(session, Contact, key, populate_existing=True)
        if question.answer is not None:
            unlock(session)
            return Answered(False, f"This question was already closed ({question.answer}). Thank you.")
        question.answer, question.answered_at = reply, now
        session.add(question)
        if reply == YES:
            status = Status.CONFIRMED if row.status == Status.CONTACTING else row.status
            record(session, row, user_id, "answered: it was me", status, now=now)
        else:
            record(session, row, user_id, "answered: it was not me", Status.ESCALATED, now=now)
        session.commit()
    _close_dm(client, question, row, "You answered *yes, this was me*. Thank you!" if reply == YES else
              "You answered *no, this wasn't me*. The security team has been alerted. Thank you!")
    refresh_alert(store, client, row.signal_id, settings)
    if reply == YES:
        line = f":white_check_mark: {mention(user_id)} answered: *yes, this was me*."
    else:
        line = (f"<!channel> :warning: {mention(user_id)} answered: *no, this wasn't me*. "
                f"Escalated: treat the identity as compromised.")
    post_in_thread(store, client, row.signal_id, line)
    return Answered(True, "Thank you, your answer was passed on to the security team.")


def _close_dm(client: WebClient, question: Contact, row: SignalRow, outcome: str) -> None:
    if question.dm_channel and question.dm_ts:
        client.chat_update(channel=question.dm_channel, ts=question.dm_ts, text=outcome,
                           blocks=blocks.contact_closed_message(row, outcome))


def escalate_overdue(store: Store, settings: Settings, client: WebClient | None = None,
                     now: datetime | None = None) -> int:
    """Escalate every signal whose contacted person has not answered by the deadline; how many."""
    now = now or utcnow()
    with store.session() as session:
        overdue = session.exec(
            select(Contact.id).where(col(Contact.answer).is_(None), col(Contact.deadline) <= now)
            .order_by(col(Contact.deadline))
        ).all()
    if not overdue:
        return 0
    client = client or slack_client(settings)
    escalated = 0
    for contact_id in overdue:
        with store.session() as session:
            question = get_stored(session, Contact, contact_id)
            row = lock_stored_signal(session, question.signal_id)
            question = get_stored(session, Contact, contact_id, populate_existing=True)
            if question.answer is not None:  # answered, or another process got here first
                unlock(session)
                continue
            question.answer, question.answered_at = TIMEOUT, now
            session.add(question)
            # A triager may have moved on meanwhile (closed, suppressed): then silence changes nothing.
            escalate = row.status == Status.CONTACTING
            record(session, row, "sesguard", "no answer in time", Status.ESCALATED if escalate else row.status, now=now)
            session.commit()
        escalated += escalate
        minutes = _timeout_words(settings)
        line = f":hourglass: {mention(question.slack_user_id)} did not answer within {minutes}."
        try:
            _close_dm(client, question, row, f"No answer arrived within {minutes}; the security team will follow up.")
            row = refresh_alert(store, client, row.signal_id, settings) or row
            post_in_thread(store, client, row.signal_id, f"<!channel> {line} Escalated." if escalate else line)
        except Exception as exc:  # the store has the escalation; the notifier re-renders the alert
            log.warning("time-out of contact #%s stored, but Slack was not updated: %s", contact_id, exc)
    return escalated
