"""Outbox rows that one process works on at a time (learning reports, digests, suppression reminders).

A process claims a row for a while (`CLAIM`) before it posts; a claim that ran out — its holder died — can
be taken by the next process, which then looks for the lost post before posting again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from detection.store import Store

CLAIM = timedelta(minutes=2)


def claim(store: Store, model, key_column, key, pending: list, holder: str, now: datetime):
    """The row of `model` whose `key_column` is `key`, claimed by `holder`, while it is still `pending` and
    nobody else holds it (its attempts counted); None otherwise."""
    with store.session() as session:
        claimed = session.exec(sa.update(model).where(
            key_column == key, *pending, sa.or_(model.claimed_until.is_(None), model.claimed_until < now))
            .values(claimed_by=holder, claimed_until=now + CLAIM, attempts=model.attempts + 1)).rowcount
        session.commit()
        return session.get(model, key, populate_existing=True) if claimed else None


def finish(store: Store, model, key_column, key, holder: str, **values) -> None:
    """Release `holder`'s claim on the row, setting `values` (what was done, or why it was not)."""
    with store.session() as session:
        session.execute(sa.update(model).where(key_column == key, model.claimed_by == holder)
                        .values(claimed_by=None, claimed_until=None, **values))
        session.commit()
