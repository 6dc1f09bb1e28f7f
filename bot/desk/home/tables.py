"""The App Home's table: who opened the Home tab, and what they were last shown."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time


class HomeTab(SQLModel, table=True):
    """One row per person who opened the Home tab. Slack says when a Home tab is opened, never when it is
    closed: a tab opened recently (`refresh.OPEN_FOR`) counts as open and is kept current."""

    __tablename__ = "home_tabs"
    user_id: str = Field(primary_key=True)
    opened_at: datetime = utc_time(index=True)
    triager: bool = False  # as decided at its last publish (asked again at every publish)
    # the last publish (at most one a second per person, claimed with a conditional UPDATE) and what it showed
    published_at: datetime | None = utc_time(default=None, nullable=True)
    published_digest: str = ""
