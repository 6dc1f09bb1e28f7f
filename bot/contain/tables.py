"""The respond room's table: each click of a containment button, from the moment it is taken on to its outcome."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time, utcnow


class ContainmentAttempt(SQLModel, table=True):
    """One attempt at one containment action on one signal (`bot.contain.attempts`).

    An attempt is taken on under the signal's row lock, so that a double click, or two triagers at
    once, start one attempt; the IAM calls then run with no lock held. `finished_at` stays empty while
    IAM is being asked; `outcome` is then `done`, `already` or `failed`, as the signal's history says.
    """

    __tablename__ = "containment_attempts"
    id: int | None = Field(default=None, primary_key=True)
    signal_id: str = Field(index=True)
    action: str  # the action module's KEY, e.g. "deactivate_access_key"
    requested_by: str
    requested_at: datetime = utc_time(default_factory=utcnow)
    finished_at: datetime | None = utc_time(default=None, nullable=True)
    outcome: str | None = None
    detail: str = ""
