"""The reminders' outbox: one row per suppression and expiry it was made for."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from detection.store import utc_time, utcnow


class SuppressionReminder(SQLModel, table=True):
    """The DM to a suppression's author before it expires. Unique per (suppression, expiry): however many
    processes see it due, one row, claimed before it is sent and sent once; an extension moves the expiry,
    and the next reminder is a new row."""

    __tablename__ = "suppression_reminders"
    __table_args__ = (sa.UniqueConstraint("suppression_id", "expires_at", name="uq_suppression_reminders_expiry"),)
    id: int | None = Field(default=None, primary_key=True)
    suppression_id: int = Field(index=True)
    expires_at: datetime = utc_time()
    author: str
    created_at: datetime = utc_time(default_factory=utcnow)
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    attempts: int = 0
    sent_at: datetime | None = utc_time(default=None, nullable=True, index=True)
    dropped: bool = False  # lifted, extended or expired before it could be sent: never sent
    dm_channel: str | None = None
    dm_ts: str | None = None
    extended_by: str | None = None
    extended_at: datetime | None = utc_time(default=None, nullable=True)
