"""How delivery to Slack is doing: what the latest notifier pass said, and how long alerts have waited.

The notifier runs in the worker; `/healthz` and `/sesguard status` are answered by `serve`, another
process. So the notifier writes the outcome of each pass that reached Slack into `delivery_state`, and
the health report reads it from there, together with the outbox itself.

Delivery is failing
- at once when the latest pass that reached Slack was stopped by an error that is not transient (a
  revoked token, a channel the bot left: nothing gets through until someone acts);
- when alerts wait while nothing reaches Slack: the oldest waiting alert is older than the patience
  (three poll intervals) and no message was posted or updated within it (Slack down that long, a worker
  that is not running). A backlog being posted at Slack's pace is not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.alerts.tables import AlertPost, DeliveryState, unposted, with_posts
from detection.signals import Status
from detection.store import SignalRow, Store, utcnow

SET_ASIDE_SHOWN = 10


def record_pass(store: Store, channel: str, *, stopped_by: str | None, transient: bool,
                now: datetime | None = None) -> None:
    """Store what a notifier pass that reached Slack (or had nothing to post) says about delivery."""
    now = now or utcnow()
    with store.session() as session:
        store.insert_ignoring_duplicates(session, DeliveryState, [
            {"channel": channel, "last_pass_at": now, "stopped_by_transient": False}])
        session.execute(sa.update(DeliveryState).where(col(DeliveryState.channel) == channel).values(
            last_pass_at=now, stopped_by=stopped_by, stopped_by_transient=transient))
        session.commit()


@dataclass
class SetAsideAlert:
    signal_id: str
    identity: str
    error: str
    failures: int
    retry_at: datetime | None


@dataclass
class DeliveryHealth:
    channel: str | None
    state: DeliveryState | None  # None: no pass has reached Slack yet
    pending: int  # unposted, unsuppressed alerts (set-aside ones included)
    oldest_pending_at: datetime | None  # when the alert waiting longest was stored
    last_post_at: datetime | None  # the latest message posted or brought up to date
    set_aside: int  # alerts (first posts or updates) waiting out a backoff after Slack refused them
    set_aside_shown: list[SetAsideAlert] = field(default_factory=list)
    stopped: bool = False  # the latest pass was stopped by an error that is not transient
    stalled: bool = False  # alerts have waited longer than the patience and nothing reached Slack meanwhile

    @property
    def failing(self) -> bool:
        return self.stopped or self.stalled

    def oldest_pending_seconds(self, now: datetime) -> float | None:
        return round((now - self.oldest_pending_at).total_seconds(), 1) if self.oldest_pending_at else None


def delivery_health(store: Store, channel: str | None, patience: timedelta,
                    now: datetime | None = None) -> DeliveryHealth:
    now = now or utcnow()
    # Set aside: refused (or unrenderable) at its latest attempt, a first post or an update of a grown alert.
    set_aside = sa.and_(col(AlertPost.failures) > 0, col(SignalRow.status) != Status.SUPPRESSED.value)
    with store.session() as session:
        state = session.get(DeliveryState, channel) if channel else None
        pending, oldest = session.exec(with_posts(
            select(sa.func.count(), sa.func.min(SignalRow.created_at)).select_from(SignalRow)).where(unposted())).one()
        last_post = session.exec(select(sa.func.max(AlertPost.posted_at))).one()
        set_aside_count = session.exec(with_posts(select(sa.func.count()).select_from(SignalRow))
                                       .where(set_aside)).one()
        shown = session.exec(with_posts(select(SignalRow, AlertPost)).where(set_aside)
                             .order_by(col(SignalRow.created_at), col(SignalRow.signal_id))
                             .limit(SET_ASIDE_SHOWN)).all()
    report = DeliveryHealth(
        channel=channel, state=state, pending=pending, oldest_pending_at=oldest, last_post_at=last_post,
        set_aside=set_aside_count,
        set_aside_shown=[SetAsideAlert(row.signal_id, row.identity, post.error or "", post.failures, post.retry_at)
                         for row, post in shown],
    )
    report.stopped = state is not None and state.stopped_by is not None and not state.stopped_by_transient
    report.stalled = (oldest is not None and now - oldest > patience
                      and (last_post is None or now - last_post > patience))
    return report
