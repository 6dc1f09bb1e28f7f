"""How polling, delivery to Slack and paging are doing: for `GET /healthz` and `/sesguard status`.

`/healthz` answers anyone who can reach the web process (load balancers, uptime checks), so it carries
status and counts only (SPEC §2); which account, region or error is for triagers, in `/sesguard status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from bot.settings import Settings
from bot.worker.tables import PAGE_REJECTED, Page, PollState
from detection.signals import Status
from detection.store import SignalRow, Store, utcnow

# Polling, or delivery to Slack, counts as failing once it has not succeeded for this many poll intervals.
FAILING_AFTER_INTERVALS = 3
# Pages PagerDuty rejected are reported this long: each is a configuration or payload problem to fix.
REJECTED_PAGES_SHOWN = timedelta(days=7)


@dataclass
class SourceHealth:
    source: str
    account_id: str
    region: str
    last_success_at: datetime | None
    lag_seconds: float | None  # how far behind now the watermark is
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    failing: bool

    def line(self) -> str:
        where = f"{self.account_id}/{self.region} ({self.source})"
        success = _ago(self.last_success_at) if self.last_success_at else "never"
        lag = f"{self.lag_seconds / 60:.1f} min" if self.lag_seconds is not None else "-"
        text = f"{'FAILING' if self.failing else 'ok'} {where}: last poll {success}, lag {lag}"
        if self.last_error:
            text += f", last error {_ago(self.last_error_at)}: {self.last_error[:200]}"
        return text


@dataclass
class PagingHealth:
    """The pager's outbox, with PAGERDUTY_ROUTING_KEY."""

    pending: int = 0
    waiting_since: datetime | None = None  # the oldest page still waiting
    last_error: str | None = None  # PagerDuty's latest refusal or failure
    rejected: int = 0  # within REJECTED_PAGES_SHOWN

    def lines(self) -> list[str]:
        line = f"{self.pending} pages waiting for PagerDuty"
        if self.pending:
            line += f" (oldest since {_ago(self.waiting_since)})"
        lines = [line]
        if self.rejected:
            lines.append(f"{self.rejected} pages rejected by PagerDuty in the last {REJECTED_PAGES_SHOWN.days} days")
        if self.last_error and (self.pending or self.rejected):
            lines.append(f"last PagerDuty error: {self.last_error[:300]}")
        return lines


@dataclass
class Health:
    checked_at: datetime
    sources: list[SourceHealth] = field(default_factory=list)
    pending_alerts: int = 0
    oldest_pending_at: datetime | None = None  # when the alert waiting longest was stored
    last_post_at: datetime | None = None  # the latest message posted or brought up to date
    delivery_failing: bool = False

    paging: PagingHealth | None = None  # None: PagerDuty is not configured

    @property
    def polling_failing(self) -> bool:
        return any(source.failing for source in self.sources)

    @property
    def ok(self) -> bool:
        return not self.polling_failing and not self.delivery_failing

    def problems(self) -> list[str]:
        return [f"{what} is failing" for what, failing in
                (("polling", self.polling_failing), ("delivery to Slack", self.delivery_failing)) if failing]

    def as_dict(self) -> dict:
        """The `/healthz` summary: status and counts, nothing a stranger could learn the deployment from."""
        paging = {"pending_pages": self.paging.pending, "rejected_pages": self.paging.rejected} if self.paging else {}
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(),
            "sources": len(self.sources),
            "failing_sources": sum(source.failing for source in self.sources),
            "pending_alerts": self.pending_alerts,
            "delivery_failing": self.delivery_failing,
            **paging,
        }

    def lines(self) -> list[str]:
        paging = self.paging.lines() if self.paging else []
        polls = [source.line() for source in self.sources] or ["no poll has run yet"]
        if not self.sources and not self.pending_alerts:
            return polls + paging
        waiting = f"{self.pending_alerts} alerts waiting to be posted"
        if self.delivery_failing:
            last = _ago(self.last_post_at) if self.last_post_at else "never"
            waiting = f"FAILING delivery: {waiting}, the oldest since {_ago(self.oldest_pending_at)}, last post {last}"
        return polls + [waiting] + paging


def health(store: Store, settings: Settings, now: datetime | None = None) -> Health:
    now = now or utcnow()
    patience = timedelta(seconds=settings.poll_seconds * FAILING_AFTER_INTERVALS)
    report = Health(checked_at=now)
    waiting = sa.and_(SignalRow.slack_ts.is_(None), SignalRow.status != Status.SUPPRESSED.value)
    with store.session() as session:
        rows = session.exec(select(PollState).order_by(PollState.source, PollState.account_id, PollState.region)).all()
        report.pending_alerts, report.oldest_pending_at = session.exec(
            select(sa.func.count(), sa.func.min(SignalRow.created_at)).where(waiting)).one()
        report.last_post_at = session.exec(select(sa.func.max(SignalRow.posted_at))).one()
    # Delivery fails when alerts wait while nothing reaches Slack: a backlog being posted at Slack's pace
    # is not a failure, a Slack outage or a worker that is not running is.
    report.delivery_failing = (
        report.oldest_pending_at is not None and now - report.oldest_pending_at > patience
        and (report.last_post_at is None or now - report.last_post_at > patience)
    )
    for row in rows:
        # A poll runs once an interval: without any success yet, count the failed polls instead.
        failing = row.consecutive_failures > 0 and (
            now - row.last_success_at > patience if row.last_success_at
            else row.consecutive_failures >= FAILING_AFTER_INTERVALS
        )
        report.sources.append(SourceHealth(
            source=row.source, account_id=row.account_id, region=row.region,
            last_success_at=row.last_success_at,
            lag_seconds=(now - row.watermark).total_seconds() if row.watermark else None,
            last_error=row.last_error, last_error_at=row.last_error_at,
            consecutive_failures=row.consecutive_failures, failing=failing,
        ))
    if settings.pagerduty_routing_key is not None:
        report.paging = paging_health(store, now)
    return report


def paging_health(store: Store, now: datetime) -> PagingHealth:
    waiting = Page.outcome.is_(None)
    rejected = sa.and_(Page.outcome == PAGE_REJECTED, Page.done_at >= now - REJECTED_PAGES_SHOWN)
    with store.session() as session:
        pending, since = session.exec(select(sa.func.count(), sa.func.min(Page.created_at)).where(waiting)).one()
        rejected_count = session.exec(select(sa.func.count()).select_from(Page).where(rejected)).one()
        last_error = session.exec(
            select(Page.last_error).where(Page.last_error.is_not(None), sa.or_(waiting, rejected))
            .order_by(Page.id.desc()).limit(1)
        ).first()
    return PagingHealth(pending, since, last_error, rejected_count)


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
