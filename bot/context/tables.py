"""The triage context's tables: the facts gathered per alert, the lookups they came from (a cache shared by
every process), and the AWS IP ranges `sesguard ip-ranges` downloaded."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from detection.store import utc_time, utcnow

PENDING = "pending"  # to be gathered (the alert is posted)
DONE = "done"  # gathered and stored; the alert shows it (or will, at the notifier's next pass)


class TriageContext(SQLModel, table=True):
    """One row per posted alert: the facts that answer "should this identity have made these calls from
    this address?", gathered once after the alert was posted."""

    __tablename__ = "triage_contexts"
    signal_id: str = Field(primary_key=True)
    state: str = Field(default=PENDING, index=True)
    requested_at: datetime = utc_time(default_factory=utcnow)
    # the process gathering it, until when, and how many times it was taken up (a process that died mid-way
    # leaves it to another once its claim lapses; after a few attempts it is stored with what is unknown)
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    attempts: int = 0
    facts: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # `facts.Context.to_dict()`
    # the owner's Slack user ID when one was found: Contact user asks them without the picker
    owner_slack_id: str | None = None
    unknown: int = 0  # lookups that were denied or failed ("unknown (reason)" in the alert)
    gathered_at: datetime | None = utc_time(default=None, nullable=True)


class ContextLookup(SQLModel, table=True):
    """A lookup's answer (or why it failed) and when it was had: the same key, tags or e-mail is asked once
    per `bot.context.cache` period, whichever process asks."""

    __tablename__ = "context_lookups"
    key: str = Field(primary_key=True)  # e.g. "iam:ListUserTags:111122223333:alice"
    answer: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = None
    fetched_at: datetime = utc_time(default_factory=utcnow, index=True)


class IpRangesRow(SQLModel, table=True):
    """The AWS IP ranges in use when newer than the shipped excerpt (`sesguard ip-ranges`)."""

    __tablename__ = "aws_ip_ranges"
    key: str = Field(primary_key=True)  # one row: "aws"
    sync_token: str
    create_date: str
    document: str = Field(sa_column=Column(sa.Text, nullable=False))
    stored_at: datetime = utc_time(default_factory=utcnow)
    source: str = ""
