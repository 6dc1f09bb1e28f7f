"""Leases in the `leases` table: which process does a piece of work, until it stops renewing.

A lease is taken with one conditional UPDATE (free, expired, or already ours), which only one process can
win on SQLite and PostgreSQL alike. A holder that dies simply stops renewing; the lease lapses and the
next process that asks takes it over. Times are this host's clock (UTC): hosts must keep NTP time.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.store.outbox import holder_name
from detection.store import Store, table_of, utc_time, utcnow


class LeaseRow(SQLModel, table=True):
    """Which worker runs the scheduled jobs; others wait and take over once it expires."""

    __tablename__ = "leases"
    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime = utc_time()


def poll_lease_name(source: str, account: str) -> str:
    """The lease a poll pass holds on one account of a source while it reads it."""
    return f"poll:{source}:{account}"


class Lease:
    def __init__(self, store: Store, name: str, seconds: float, holder: str | None = None):
        self.store, self.name, self.ttl = store, name, timedelta(seconds=seconds)
        self.holder = holder or holder_name()
        self._renewed_at: datetime | None = None
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or ours; True when we hold it now. One upsert, in SQLAlchemy Core
        as the rest of what the poll does for every account and pass."""
        now = utcnow()
        table = table_of(LeaseRow)
        insert = self.store.insert(LeaseRow)
        statement = insert.values(name=self.name, holder=self.holder, expires_at=now + self.ttl).on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at},
            where=sa.or_(table.c.holder == self.holder, table.c.expires_at < now)).returning(table.c.name)
        with self.store.engine.begin() as connection:  # a row back: inserted, or updated as the WHERE allowed
            taken = connection.execute(statement).first() is not None
        if taken:
            self._renewed_at = now
        return taken

    def renew(self) -> bool:
        """Extend the lease; False when another process holds it now (ours lapsed and was taken)."""
        now = utcnow()
        table = table_of(LeaseRow)
        with self.store.engine.begin() as connection:
            kept = connection.execute(
                sa.update(table).where(table.c.name == self.name, table.c.holder == self.holder)
                .values(expires_at=now + self.ttl)
            ).rowcount
        if kept:
            self._renewed_at = now
        return bool(kept)

    def keep_alive(self) -> bool:
        """Renew when a third of the lease has passed since the last renewal; cheap to call often."""
        with self._lock:
            if self._renewed_at is not None and utcnow() - self._renewed_at < self.ttl / 3:
                return True
            return self.renew()

    def release(self) -> None:
        table = table_of(LeaseRow)
        with self.store.engine.begin() as connection:
            connection.execute(sa.delete(table).where(table.c.name == self.name, table.c.holder == self.holder))
        self._renewed_at = None

    def current_holder(self) -> str | None:
        with self.store.session() as session:
            row = session.get(LeaseRow, self.name)
            return row.holder if row is not None and row.expires_at > utcnow() else None
