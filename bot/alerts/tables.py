"""The alerts' table: what the latest notifier pass said, per alert channel (for health)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from detection.store import utc_time


class DeliveryState(SQLModel, table=True):
    """Per alert channel: what the latest notifier pass that reached Slack (or found nothing to post) said.

    Written by the worker, read by `serve` for `/healthz`: the two are separate processes.
    """

    __tablename__ = "delivery_state"
    channel: str = Field(primary_key=True)
    last_pass_at: datetime = utc_time()
    stopped_by: str | None = None  # the error that ended that pass early; None: it went through
    stopped_by_transient: bool = False  # Slack unreachable, overloaded or rate limiting
