"""Contact's tables: who to ask about an identity, and the questions asked."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time, utcnow


class IdentityMapping(SQLModel, table=True):
    """`/sesguard map <arn> <@user>`: who to ask about an identity."""

    __tablename__ = "identity_mappings"
    identity: str = Field(primary_key=True)
    slack_user_id: str
    set_by: str
    set_at: datetime = utc_time(default_factory=utcnow)


class Contact(SQLModel, table=True):
    """A "was this you?" question sent to a person about a signal."""

    __tablename__ = "contacts"
    id: int | None = Field(default=None, primary_key=True)
    signal_id: str = Field(index=True)
    slack_user_id: str
    asked_by: str
    asked_at: datetime = utc_time(default_factory=utcnow)
    deadline: datetime = utc_time(index=True)
    dm_channel: str | None = None
    dm_ts: str | None = None
    answer: str | None = None  # "yes" | "no" | "timeout"
    answered_at: datetime | None = utc_time(default=None, nullable=True)
