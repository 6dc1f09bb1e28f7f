"""The alerts' tables: each signal's alert in Slack with its outbox claim, and what the latest notifier pass
said per alert channel (for health)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from detection.signals import Status
from detection.store import SignalRow, Store, utc_time


class AlertPost(SQLModel, table=True):
    """A signal's alert in the alert channel, and the notifier's outbox claim on it (`bot.alerts.notifier`).

    One row per signal, keyed by its id, made by the notifier when it first claims the signal: a signal
    without one is waiting to be posted, as is one whose `slack_ts` is still empty. The signal itself is
    detection's (`detection.store.SignalRow`); what became of its message is the application's, here.
    """

    __tablename__ = "alert_posts"
    signal_id: str = Field(primary_key=True)
    slack_channel: str | None = None
    slack_ts: str | None = None
    posted_at: datetime | None = utc_time(default=None, nullable=True)  # the signal as shown: grown since?
    # the notifier's claim (several processes share one outbox), and how many posts were attempted: after
    # a failed or interrupted attempt, Slack is searched before posting again
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    attempts: int = 0
    # A message Slack refuses (or that cannot be rendered) is set aside instead of blocking the outbox: how
    # many times in a row that happened, the last reason, and when it is due again (None: due now)
    failures: int = 0
    error: str | None = None
    retry_at: datetime | None = utc_time(default=None, nullable=True)


Query = TypeVar("Query", bound=sa.Select)


def with_posts(statement: Query) -> Query:
    """`statement` over signals, each with its alert's post (the post's columns NULL where there is none yet)."""
    return statement.outerjoin(AlertPost, col(AlertPost.signal_id) == col(SignalRow.signal_id))


def unposted() -> sa.ColumnElement[bool]:
    """Over `with_posts`: a signal waiting for its first post (never posted, and not suppressed)."""
    return sa.and_(col(AlertPost.slack_ts).is_(None), col(SignalRow.status) != Status.SUPPRESSED.value)


@dataclass(frozen=True)
class Message:
    """Where a posted alert is in Slack."""

    channel: str
    ts: str


def posted_message(store: Store, signal_id: str) -> Message | None:
    """The signal's alert in Slack; None while it is not posted."""
    with store.session() as session:
        post = session.get(AlertPost, signal_id)
    if post is None or not (post.slack_channel and post.slack_ts):  # stored together when it was posted
        return None
    return Message(post.slack_channel, post.slack_ts)


def alert_channel(store: Store, signal_id: str) -> str | None:
    """The channel of the signal's alert, where notes about it go when the click or modal has none; None
    while it is not posted."""
    message = posted_message(store, signal_id)
    return message.channel if message is not None else None


class DeliveryState(SQLModel, table=True):
    """Per alert channel: what the latest notifier pass that reached Slack (or found nothing to post) said.

    Written by the worker, read by `serve` for `/healthz`: the two are separate processes.
    """

    __tablename__ = "delivery_state"
    channel: str = Field(primary_key=True)
    last_pass_at: datetime = utc_time()
    stopped_by: str | None = None  # the error that ended that pass early; None: it went through
    stopped_by_transient: bool = False  # Slack unreachable, overloaded or rate limiting
