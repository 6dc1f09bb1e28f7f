"""Page's table: the pages outbox."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time, utcnow

# What became of a page (`Page.outcome`; empty while it waits).
PAGE_ACCEPTED, PAGE_REJECTED, PAGE_SUPERSEDED = "accepted", "rejected", "superseded"


class Page(SQLModel, table=True):
    """The pager's outbox: one PagerDuty event due for one row of a signal's history (`bot.page.pager`).

    Keyed by that history row, so that however many passes and processes derive it, it is one page.
    `outcome` stays empty while the page waits; then `accepted` (PagerDuty answered 202), `rejected`
    (400: never retried) or `superseded` (a trigger whose signal was resolved before it could be sent).
    """

    __tablename__ = "pages"
    id: int | None = Field(default=None, primary_key=True)
    history_id: int = Field(unique=True)
    signal_id: str = Field(index=True)
    event_action: str  # "trigger" | "resolve"
    created_at: datetime = utc_time(default_factory=utcnow)
    next_attempt_at: datetime = utc_time(default_factory=utcnow)
    attempts: int = 0
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    outcome: str | None = Field(default=None, index=True)
    done_at: datetime | None = utc_time(default=None, nullable=True)
    last_error: str | None = None
