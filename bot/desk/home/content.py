"""What the Home tab shows, read from the store: the open alerts, the questions waiting for an answer, the
accounts still learning, the suppressions about to expire, and the worker's health.

Counts come from SQL; only what the tab can show is loaded (the newest `ALERTS_SHOWN` alerts), so hundreds
of open alerts cost one count and one page. A person who may not triage gets only the questions addressed
to them (`for_person`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.config.settings import Settings
from bot.contact.tables import Contact
from bot.health.report import health
from detection.signals import Status
from detection.store import Scope, SignalRow, Store, SuppressionRow, row_id, utcnow

# SPEC §8: the open alerts of the desk (a confirmed alert waits for nobody).
DESK_STATUSES = (Status.NEW.value, Status.CONTACTING.value, Status.ESCALATED.value)
# A view holds at most 100 blocks: each alert takes two (its summary and its buttons), the rest of the tab
# about twenty. Beyond this many, the tab says how many more there are.
ALERTS_SHOWN = 30
QUESTIONS_SHOWN = 25
LIST_SHOWN = 25
EXPIRING_WITHIN = timedelta(days=7)


@dataclass
class Question:
    contact_id: int
    person: str
    asked_by: str
    asked_at: datetime
    deadline: datetime
    signal_id: str
    identity: str
    account_id: str


@dataclass
class Desk:
    triager: bool
    alerts: list[SignalRow] = field(default_factory=list)
    alerts_open: int = 0
    alerts_by_status: dict[str, int] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    questions_waiting: int = 0
    learning: list[tuple[str, datetime]] = field(default_factory=list)  # (account, learning ends)
    learning_count: int = 0
    expiring: list[SuppressionRow] = field(default_factory=list)
    expiring_count: int = 0
    hits: dict[int, int] = field(default_factory=dict)  # suppression id → signals it covered
    health_ok: bool = True
    health_problems: list[str] = field(default_factory=list)
    health_lines: list[str] = field(default_factory=list)


def _questions(store: Store, person: str | None) -> tuple[list[Question], int]:
    waiting: list[sa.ColumnElement[bool]] = [col(Contact.answer).is_(None)]
    if person is not None:
        waiting.append(col(Contact.slack_user_id) == person)
    with store.session() as session:
        count = session.exec(select(sa.func.count()).select_from(Contact).where(*waiting)).one()
        rows = session.exec(
            select(Contact, SignalRow).join(SignalRow, col(SignalRow.signal_id) == col(Contact.signal_id))
            .where(*waiting).order_by(col(Contact.deadline), col(Contact.id)).limit(QUESTIONS_SHOWN)
        ).all()
    return [Question(row_id(c), c.slack_user_id, c.asked_by, c.asked_at, c.deadline,
                     s.signal_id, s.identity, s.account_id)
            for c, s in rows], count


def for_person(store: Store, user_id: str) -> Desk:
    """A person who may not triage: only the questions asked of them."""
    desk = Desk(triager=False)
    desk.questions, desk.questions_waiting = _questions(store, user_id)
    return desk


def for_triager(store: Store, settings: Settings, now: datetime | None = None) -> Desk:
    now = now or utcnow()
    desk = Desk(triager=True)
    open_alerts = col(SignalRow.status).in_(DESK_STATUSES)
    learning = timedelta(days=settings.learning_days)
    with store.session() as session:
        desk.alerts_by_status = dict(session.exec(
            select(SignalRow.status, sa.func.count()).where(open_alerts).group_by(SignalRow.status)).all())
        desk.alerts_open = sum(desk.alerts_by_status.values())
        desk.alerts = list(session.exec(
            select(SignalRow).where(open_alerts)
            .order_by(col(SignalRow.first_seen).desc(), col(SignalRow.signal_id)).limit(ALERTS_SHOWN)).all())
        # Learning ends `learning` after the start of observation: the comparison is done here, on the
        # few scopes there are, rather than in SQL (date arithmetic differs between SQLite and PostgreSQL).
        scopes = session.exec(select(Scope).where(Scope.observed_since > now - learning)).all()
        ends = sorted((scope.observed_since + learning, scope.account_id) for scope in scopes)
        desk.learning_count = len(ends)
        desk.learning = [(account, end) for end, account in ends[:LIST_SHOWN]]
        expiring = sa.and_(col(SuppressionRow.lifted_at).is_(None), col(SuppressionRow.expires_at) > now,
                           col(SuppressionRow.expires_at) <= now + EXPIRING_WITHIN)
        desk.expiring_count = session.exec(select(sa.func.count()).select_from(SuppressionRow).where(expiring)).one()
        desk.expiring = list(session.exec(
            select(SuppressionRow).where(expiring).order_by(col(SuppressionRow.expires_at)).limit(LIST_SHOWN)).all())
    desk.hits = store.suppression_hits(row_id(row) for row in desk.expiring)
    desk.questions, desk.questions_waiting = _questions(store, None)
    report = health(store, settings, now)
    desk.health_ok, desk.health_problems, desk.health_lines = report.ok, report.problems(), report.lines()
    return desk
