"""The investigations: one row per investigation of a signal and window, from the request to the summary
in the alert's thread, so that a restart neither loses one nor posts it twice."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from detection.store import utc_time, utcnow

PENDING = "pending"  # to be read from CloudTrail
GATHERED = "gathered"  # summary stored (and the signal escalated), not yet all in the thread
POSTED = "posted"  # done: in the thread, or given up on (`error` says why)


class Investigation(SQLModel, table=True):
    __tablename__ = "investigations"
    __table_args__ = (sa.UniqueConstraint("signal_id", "window_start", "window_end",
                                          name="uq_investigations_signal_window"),)
    id: int | None = Field(default=None, primary_key=True)
    signal_id: str = Field(index=True)
    window_start: datetime = utc_time()
    window_end: datetime = utc_time()
    requested_by: str  # a Slack user ID, or "sesguard" for an automatic investigation
    requested_at: datetime = utc_time(default_factory=utcnow)
    state: str = Field(default=PENDING, index=True)
    # the process carrying it out, until when (renewed while it reads), and how many claims were made:
    # after an interrupted attempt the thread is searched before anything is posted again
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    attempts: int = 0
    # the messages as they are posted: {"text", "blocks", "escalation"}
    summary: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    escalated: bool = False  # this investigation made the signal critical
    escalation_ts: str | None = None
    summary_ts: str | None = None
    finished_at: datetime | None = utc_time(default=None, nullable=True)
    error: str | None = None
