"""Triage state changes in the store: one transaction each, each with its line in the signal's history.

Every change locks the signal's row first (an `UPDATE` that changes nothing: a row lock on PostgreSQL,
the write lock on SQLite), then reads and decides. Two clicks racing each other therefore see each
other's result, and the second one changes nothing: every action is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.slack.ids import DURATIONS, SCOPE_ACCOUNT, Action
from bot.triage.states import applies
from detection.signals import Status
from detection.store import (
    AuditEntry,
    SignalHistory,
    SignalRow,
    Store,
    SuppressionRow,
    utcnow,
)


@dataclass
class Change:
    changed: bool
    signal: SignalRow | None  # None: no such signal
    previous_status: str | None = None
    last: SignalHistory | None = None  # when nothing changed: the step that got there first
    detail: str = ""


def lock_signal(session: Session, signal_id: str) -> SignalRow | None:
    session.execute(
        sa.update(SignalRow).where(col(SignalRow.signal_id) == signal_id).values(status=SignalRow.status))
    return session.get(SignalRow, signal_id, populate_existing=True)


def lock_stored_signal(session: Session, signal_id: str) -> SignalRow:
    """`lock_signal` for the signal a stored row refers to: signals are never deleted, so it is there."""
    row = lock_signal(session, signal_id)
    if row is None:
        raise LookupError(f"signal {signal_id!r} is not in the store")
    return row


def unlock(session: Session) -> None:
    """End the transaction without a change; what was read stays readable (a rollback would expire it)."""
    session.expunge_all()
    session.rollback()


def _latest(session: Session, signal_id: str) -> SignalHistory | None:
    return session.exec(
        select(SignalHistory).where(SignalHistory.signal_id == signal_id)
        .order_by(col(SignalHistory.at).desc(), col(SignalHistory.id).desc()).limit(1)
    ).first()


def record(session: Session, row: SignalRow, actor: str, action: str, status: str, detail: str = "",
           now: datetime | None = None) -> SignalHistory:
    now = now or utcnow()
    row.status = status
    # The posted message is now behind the store; the notifier re-renders it unless the caller does first.
    row.updated_at = max(row.updated_at, now)
    session.add(row)
    entry = SignalHistory(signal_id=row.signal_id, actor=actor, action=action, status=status, detail=detail, at=now)
    session.add(entry)
    return entry


def _locked(session: Session, signal_id: str, action: Action) -> SignalRow | Change:
    """The locked row when the action applies to it; else the Change saying why nothing happens."""
    row = lock_signal(session, signal_id)
    if row is None:
        return Change(False, None)
    if not applies(action, row.status):
        last = _latest(session, signal_id)
        unlock(session)
        return Change(False, row, row.status, last)
    return row


def transition(store: Store, signal_id: str, actor: str, action: Action, history_action: str, to: Status,
               detail: str = "") -> Change:
    with store.session() as session:
        row = _locked(session, signal_id, action)
        if isinstance(row, Change):
            return row
        previous = row.status
        record(session, row, actor, history_action, to, detail)
        session.commit()
        return Change(True, row, previous)


def escalate(store: Store, signal_id: str, actor: str) -> Change:
    return transition(store, signal_id, actor, Action.ESCALATE, "escalated", Status.ESCALATED)


def close(store: Store, signal_id: str, actor: str) -> Change:
    return transition(store, signal_id, actor, Action.NOT_AN_ISSUE, "not an issue", Status.CLOSED)


def reopen(store: Store, signal_id: str, actor: str) -> Change:
    """A closed or suppressed alert back to `new` (SPEC §8). The suppression that covered it is not lifted:
    it still keeps later signals of that identity out of the channel; `/sesguard unsuppress` lifts it."""
    return transition(store, signal_id, actor, Action.REOPEN, "reopened", Status.NEW)


def suppress(store: Store, signal_id: str, actor: str, scope: str, duration: str, reason: str,
             now: datetime | None = None) -> Change:
    """Create the suppression (audited) and mark the signal suppressed, once however often submitted."""
    now = now or utcnow()
    days = DURATIONS[duration]
    with store.session() as session:
        row = _locked(session, signal_id, Action.SUPPRESS)
        if isinstance(row, Change):
            return row
        suppression = SuppressionRow(
            identity=row.identity, account_id=row.account_id if scope == SCOPE_ACCOUNT else None,
            author=actor, reason=reason, created_at=now, duration_days=days,
            expires_at=now + timedelta(days=days) if days is not None else None,
        )
        session.add(suppression)
        session.flush()
        where = f"in account {row.account_id}" if suppression.account_id else "in every account"
        expiry = f"for {days:g} days" if days is not None else "with no expiry"
        detail = f"suppression #{suppression.id} {where}, {expiry}: {reason}"
        session.add(AuditEntry(actor=actor, action="suppression created", subject=row.identity, detail=detail, at=now))
        previous = row.status
        row.suppression_id = suppression.id
        record(session, row, actor, "suppressed", Status.SUPPRESSED, detail, now)
        session.commit()
        return Change(True, row, previous, detail=detail)


def lift_suppression(store: Store, suppression_id: int, actor: str,
                     now: datetime | None = None) -> tuple[SuppressionRow | None, bool]:
    """(the suppression or None, whether this call lifted it); audited. Lifting twice changes nothing."""
    now = now or utcnow()
    with store.session() as session:
        session.execute(sa.update(SuppressionRow).where(col(SuppressionRow.id) == suppression_id)
                        .values(lifted_at=SuppressionRow.lifted_at))
        row = session.get(SuppressionRow, suppression_id, populate_existing=True)
        if row is None or row.lifted_at is not None:
            unlock(session)
            return row, False
        row.lifted_at, row.lifted_by = now, actor
        session.add(row)
        session.add(AuditEntry(actor=actor, action="suppression lifted", subject=row.identity,
                               detail=f"suppression #{row.id}", at=now))
        session.commit()
        return row, True
