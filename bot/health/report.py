"""How polling, delivery to Slack and paging are doing: for `GET /healthz` and `/sesguard status`.

Health must tell the truth also when nobody is left to report a failure (SPEC §3): a worker killed with
SIGKILL, a crashed dyno, a worker that never started. So a place (account and region of a source) is
failing when its last successful poll is older than three poll intervals, whether or not a failure was
recorded; one that never succeeded is failing once it has waited that long, counted from when it was
first expected (its first listing; for the source as a whole, the first time any process looked for it).
A first poll under way is the exception: a backfill of 90 days can outlast three intervals, and while the
process doing it holds that account's poll lease (renewed between its requests), it is working, not failing.

`/healthz` answers anyone who can reach the web process (load balancers, uptime checks), so it carries
status and counts only (SPEC §2, `as_dict()`); which account, role ARN, the bot's own identity and AWS's
error text are for triagers, in `/sesguard status` (`lines()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.alerts.delivery import DeliveryHealth, delivery_health
from bot.config.settings import Settings
from bot.page.tables import PAGE_REJECTED, Page
from bot.store.lease import LeaseRow, poll_lease_name
from bot.worker.tables import SOURCE_ROW, PollState, QueueState
from detection.store import Store, utcnow

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
    waiting_since: datetime
    lag_seconds: float | None  # how far behind now the watermark is
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    first_poll_under_way: bool
    failing: bool

    @property
    def whole_source(self) -> bool:
        return (self.account_id, self.region) == SOURCE_ROW

    def line(self, now: datetime) -> str:
        whole = "receiving from the queue" if self.source == "sqs" else "listing its accounts and regions"
        where = (f"{self.source} ({whole})" if self.whole_source
                 else f"{self.account_id}/{self.region} ({self.source})")
        if self.last_success_at is None:
            progress = "first poll (backfill) under way" if self.first_poll_under_way else "no poll has run yet"
            polled = f"{progress}, waiting since {stamp(self.waiting_since)} ({_minutes(now - self.waiting_since)})"
        elif self.failing:
            silent = _minutes(now - self.last_success_at)
            polled = f"no successful poll since {stamp(self.last_success_at)} ({silent} ago)"
        else:
            polled = f"last poll {stamp(self.last_success_at)}"
        if self.lag_seconds is not None:
            polled += f", lag {self.lag_seconds / 60:.1f} min"
        text = f"{'FAILING' if self.failing else 'ok'} {where}: {polled}"
        if self.last_error:
            text += f", last error {stamp(self.last_error_at)}: {self.last_error[:200]}"
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
            line += f" (oldest since {stamp(self.waiting_since)})"
        lines = [line]
        if self.rejected:
            lines.append(f"{self.rejected} pages rejected by PagerDuty in the last {REJECTED_PAGES_SHOWN.days} days")
        if self.last_error and (self.pending or self.rejected):
            lines.append(f"last PagerDuty error: {self.last_error[:300]}")
        return lines


@dataclass
class QueueHealth:
    """The SQS queue of SESGUARD_SOURCE=sqs, as its consumers last saw it (`bot.worker.ingest.consume`)."""

    queue_url: str
    row: QueueState | None

    def lines(self, now: datetime) -> list[str]:
        row = self.row
        if row is None:
            return [f"queue {self.queue_url}: no consumer has reported yet"]
        if row.backlog is None:
            backlog = "backlog not reported by SQS yet"
        else:
            backlog = (f"{row.backlog} messages waiting, {row.in_flight} being worked on "
                       f"(SQS, {stamp(row.attributes_at)})")
        if row.oldest_received_seconds is not None:
            backlog += (f"; the oldest message of the latest batch was {row.oldest_received_seconds:.0f} s old "
                        f"when received {stamp(row.received_at)}")
        counted = f"{row.unusable} messages left for the redrive policy, {row.ignored} ignored (test events, digests)"
        return [f"queue {self.queue_url}: {backlog}", f"queue {self.queue_url}: {counted}"]


@dataclass
class Health:
    checked_at: datetime
    sources: list[SourceHealth] = field(default_factory=list)
    delivery: DeliveryHealth | None = None
    paging: PagingHealth | None = None  # None: PagerDuty is not configured
    queue: QueueHealth | None = None  # None: the source is no SQS queue

    @property
    def polling_failing(self) -> bool:
        return any(source.failing for source in self.sources)

    @property
    def delivery_failing(self) -> bool:
        return self.delivery is not None and self.delivery.failing

    @property
    def ok(self) -> bool:
        return not self.polling_failing and not self.delivery_failing

    @property
    def pending_alerts(self) -> int:
        return self.delivery.pending if self.delivery else 0

    def problems(self) -> list[str]:
        return [f"{what} is failing" for what, failing in
                (("polling", self.polling_failing), ("delivery to Slack", self.delivery_failing)) if failing]

    def as_dict(self) -> dict:
        """The `/healthz` summary: status and counts, nothing a stranger could learn the deployment from."""
        delivery = self.delivery
        paging = {"pending_pages": self.paging.pending, "rejected_pages": self.paging.rejected} if self.paging else {}
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(),
            "sources": len(self.sources),
            "failing_sources": sum(source.failing for source in self.sources),
            "pending_alerts": self.pending_alerts,
            "oldest_pending_seconds": delivery.oldest_pending_seconds(self.checked_at) if delivery else None,
            "alerts_set_aside": delivery.set_aside if delivery else 0,
            "delivery_failing": self.delivery_failing,
            **paging,
            **({"queue_backlog": self.queue.row.backlog if self.queue.row else None} if self.queue else {}),
        }

    def lines(self) -> list[str]:
        """For triagers: every place with its last poll, lag and error; delivery and the alerts set aside; pages."""
        lines = [source.line(self.checked_at) for source in self.sources]
        if self.queue is not None:
            lines += self.queue.lines(self.checked_at)
        if self.delivery is not None:
            lines += _delivery_lines(self.delivery, self.checked_at)
        return lines + (self.paging.lines() if self.paging else [])


def health(store: Store, settings: Settings, now: datetime | None = None) -> Health:
    now = now or utcnow()
    patience = timedelta(seconds=settings.poll_seconds * FAILING_AFTER_INTERVALS)
    report = Health(checked_at=now, sources=_sources(store, settings.source, patience, now))
    if settings.source == "sqs" and settings.backfill_source:
        report.sources += _backfills_missing(store, settings.backfill_source, patience, now)
    report.delivery = delivery_health(store, settings.slack_alert_channel, patience, now)
    if settings.pagerduty_routing_key is not None:
        report.paging = paging_health(store, now)
    if settings.source == "sqs" and settings.sqs_queue_url:
        with store.session() as session:
            report.queue = QueueHealth(settings.sqs_queue_url, session.get(QueueState, settings.sqs_queue_url))
    return report


def _sources(store: Store, source: str, patience: timedelta, now: datetime) -> list[SourceHealth]:
    """The configured source's places, the retired ones left out; and the source itself while no place is
    known (a worker that never came: it waits since the first look) or when its listing fails."""
    rows = _expected_places(store, source, now)
    with store.session() as session:
        leases = {poll_lease_name(source, row.account_id) for row in rows}
        polling = set(session.exec(
            select(LeaseRow.name).where(col(LeaseRow.name).in_(leases), col(LeaseRow.expires_at) > now)))
    reports = [_place(row, now, patience, poll_lease_name(source, row.account_id) in polling) for row in rows]
    places = [report for report in reports if not report.whole_source]
    listing_fails = [report for report in reports
                     if report.whole_source and report.failing and report.consecutive_failures > 0]
    return places + listing_fails if places else reports


def _backfills_missing(store: Store, source: str, patience: timedelta, now: datetime) -> list[SourceHealth]:
    """With SESGUARD_SOURCE=sqs: the backfill source's places not backfilled yet (each is read once, so a
    place done is no longer awaited, and one that keeps failing, such as a role missing, is failing)."""
    with store.session() as session:
        rows = list(session.exec(select(PollState).where(
            col(PollState.source) == source, col(PollState.retired_at).is_(None), col(PollState.watermark).is_(None),
            sa.or_(col(PollState.account_id) != SOURCE_ROW[0], col(PollState.region) != SOURCE_ROW[1]))))
        leases = {poll_lease_name(source, row.account_id) for row in rows}
        polling = set(session.exec(
            select(LeaseRow.name).where(col(LeaseRow.name).in_(leases), col(LeaseRow.expires_at) > now)))
    return [_place(row, now, patience, poll_lease_name(source, row.account_id) in polling) for row in rows]


def _expected_places(store: Store, source: str, now: datetime) -> list[PollState]:
    """The source's rows that are not retired. The first look for a source no process has polled yet
    stores its row, so that from then on it is awaited, and turns red if no worker ever comes."""
    with store.session() as session:
        def unretired() -> list[PollState]:
            return list(session.exec(
                select(PollState).where(col(PollState.source) == source, col(PollState.retired_at).is_(None))
                .order_by(col(PollState.account_id), col(PollState.region))))

        rows = unretired()
        if not any((row.account_id, row.region) == SOURCE_ROW for row in rows):
            store.insert_ignoring_duplicates(session, PollState, [{
                "source": source, "account_id": SOURCE_ROW[0], "region": SOURCE_ROW[1],
                "consecutive_failures": 0, "waiting_since": now}])
            session.commit()
            rows = unretired()
    return rows


def _place(row: PollState, now: datetime, patience: timedelta, lease_held: bool) -> SourceHealth:
    first_poll_under_way = row.last_success_at is None and lease_held
    return SourceHealth(
        source=row.source, account_id=row.account_id, region=row.region,
        last_success_at=row.last_success_at, waiting_since=row.waiting_since,
        lag_seconds=(now - row.watermark).total_seconds() if row.watermark else None,
        last_error=row.last_error, last_error_at=row.last_error_at,
        consecutive_failures=row.consecutive_failures, first_poll_under_way=first_poll_under_way,
        failing=_failing(row, now, patience, first_poll_under_way),
    )


def _failing(row: PollState, now: datetime, patience: timedelta, first_poll_under_way: bool) -> bool:
    if row.last_success_at is not None:
        return now - row.last_success_at > patience
    if row.consecutive_failures >= FAILING_AFTER_INTERVALS:
        return True  # first polls that failed, one an interval: also when a pass is trying again now
    return not first_poll_under_way and now - row.waiting_since > patience


def paging_health(store: Store, now: datetime) -> PagingHealth:
    waiting = col(Page.outcome).is_(None)
    rejected = sa.and_(col(Page.outcome) == PAGE_REJECTED, col(Page.done_at) >= now - REJECTED_PAGES_SHOWN)
    with store.session() as session:
        pending, since = session.exec(select(sa.func.count(), sa.func.min(Page.created_at)).where(waiting)).one()
        rejected_count = session.exec(select(sa.func.count()).select_from(Page).where(rejected)).one()
        last_error = session.exec(
            select(Page.last_error).where(col(Page.last_error).is_not(None), sa.or_(waiting, rejected))
            .order_by(col(Page.id).desc()).limit(1)
        ).first()
    return PagingHealth(pending, since, last_error, rejected_count)


def _delivery_lines(delivery: DeliveryHealth, now: datetime) -> list[str]:
    where = f"delivery to {delivery.channel}" if delivery.channel else "delivery"
    state = delivery.state
    if state is None:
        last = "no pass has reached Slack yet"
    else:
        last = f"last pass {stamp(state.last_pass_at)}"
        if state.stopped_by:
            kind = "a transient error" if state.stopped_by_transient else "an error"
            last += f", stopped by {kind}: {state.stopped_by}"
    last += f", last post {stamp(delivery.last_post_at)}"
    waiting = f"{delivery.pending} alerts waiting to be posted"
    if delivery.oldest_pending_at is not None:
        oldest = delivery.oldest_pending_at
        waiting += f", the oldest since {stamp(oldest)} ({_minutes(now - oldest)})"
    lines = [f"{'FAILING' if delivery.failing else 'ok'} {where}: {last}; {waiting}"]
    if delivery.set_aside:
        lines.append(f"{delivery.set_aside} alerts set aside (Slack refused them, or they cannot be rendered), "
                     "each tried again after a backoff:")
        lines += [f"{alert.signal_id} ({alert.identity}): {alert.error}; failed {alert.failures} time(s) in a row, "
                  f"next attempt after {stamp(alert.retry_at)}" for alert in delivery.set_aside_shown]
        if delivery.set_aside > len(delivery.set_aside_shown):
            lines.append(f"… {delivery.set_aside - len(delivery.set_aside_shown)} more set aside")
    return lines


def stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.1f} min"
