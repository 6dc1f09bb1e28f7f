"""One containment attempt at a time per signal and action, and its outcome in the signal's history.

`begin` locks the signal's row, as every triage change does (`triage.changes.lock_signal`), checks
that the action applies in the signal's status and that no attempt of the same action is under way,
and records the attempt. The IAM calls run after that transaction, with no lock held: on SQLite the
row lock is the whole database's write lock, and IAM may take seconds. `finish` stores the outcome
and its history row (the status does not change: containment is a step of the triage, not a verdict).
A second click while the first is under way is told so; one after it finds IAM already changed and
is answered "already". An attempt whose process died is over after IN_FLIGHT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.contain.action import HistoryActions, Outcome
from bot.contain.tables import ContainmentAttempt
from bot.triage.changes import lock_signal, lock_stored_signal, record, unlock
from detection.store import SignalRow, Store, utcnow

IN_FLIGHT = timedelta(minutes=2)


@dataclass
class Begun:
    signal: SignalRow | None  # None: no such signal
    attempt: ContainmentAttempt | None = None  # None: nothing was begun
    busy: ContainmentAttempt | None = None  # the same action's attempt already under way

    @property
    def started(self) -> bool:
        return self.attempt is not None


def begin(store: Store, signal_id: str, action: str, allowed: Callable[[str], bool], actor: str,
          now: datetime | None = None) -> Begun:
    """Take the action on for `actor`, unless the signal's status refuses it or it is under way already."""
    now = now or utcnow()
    with store.session() as session:
        row = lock_signal(session, signal_id)
        if row is None or not allowed(row.status):
            unlock(session)
            return Begun(row)
        busy = session.exec(
            select(ContainmentAttempt).where(
                ContainmentAttempt.signal_id == signal_id, ContainmentAttempt.action == action,
                col(ContainmentAttempt.finished_at).is_(None), col(ContainmentAttempt.requested_at) > now - IN_FLIGHT)
        ).first()
        if busy is not None:
            unlock(session)
            return Begun(row, busy=busy)
        attempt = ContainmentAttempt(signal_id=signal_id, action=action, requested_by=actor, requested_at=now)
        session.add(attempt)
        session.commit()
        return Begun(row, attempt)


def finish(store: Store, attempt: ContainmentAttempt, history: HistoryActions, outcome: Outcome,
           now: datetime | None = None) -> SignalRow:
    """The attempt's outcome, stored with its line in the signal's history; the signal as it is now."""
    now = now or utcnow()
    with store.session() as session:
        row = lock_stored_signal(session, attempt.signal_id)
        session.execute(sa.update(ContainmentAttempt).where(col(ContainmentAttempt.id) == attempt.id)
                        .values(finished_at=now, outcome=outcome.kind, detail=outcome.detail[:2000]))
        record(session, row, attempt.requested_by, history.of(outcome), row.status, outcome.detail[:2000], now)
        session.commit()
        return row
