"""The Slack app's own table: the requests already seen (replays are refused)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time


class SlackRequest(SQLModel, table=True):
    """Signatures of the Slack requests already handled: the same signed request twice is a replay."""

    __tablename__ = "slack_requests"
    signature: str = Field(primary_key=True)
    received_at: datetime = utc_time(index=True)


