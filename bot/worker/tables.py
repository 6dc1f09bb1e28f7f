"""The worker's tables: polling state and health per source, account and region; leases."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time


class PollState(SQLModel, table=True):
    """Per source, account and region: the watermark and the health of polling."""

    __tablename__ = "poll_state"
    source: str = Field(primary_key=True)  # "lookup" or the s3:// URL
    account_id: str = Field(primary_key=True)
    region: str = Field(primary_key=True)
    watermark: datetime | None = utc_time(default=None, nullable=True)
    backfilled_at: datetime | None = utc_time(default=None, nullable=True)
    last_success_at: datetime | None = utc_time(default=None, nullable=True)
    last_error: str | None = None
    last_error_at: datetime | None = utc_time(default=None, nullable=True)
    consecutive_failures: int = 0


class LeaseRow(SQLModel, table=True):
    """Which worker runs the scheduled jobs; others wait and take over once it expires."""

    __tablename__ = "leases"
    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime = utc_time()
