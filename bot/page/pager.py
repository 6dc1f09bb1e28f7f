"""The pager (SPEC §6 "Page"): PagerDuty events for the steps of a signal's triage, through an outbox.

- What is paged is read from the signals' audit trail, not told by the code that acted: whoever writes
  a history row (a button, the contact time-out, an investigation) pages by writing it, and a page can
  no more be lost than the row. Each row whose action is in TRIGGERS or RESOLVES gets one `pages` row,
  unique per history row, however many passes and processes derive it.
- A page is claimed (one conditional UPDATE, which only one process wins, as the notifier claims
  alerts; renewed while its request is in flight), sent, and PagerDuty's answer stored: 202 → accepted,
  never sent again, also after a restart;
  400 → rejected: logged, counted in `/sesguard status`, not retried (the same event would be refused
  again); 429, 5xx or no connection → retried later, with exponential backoff and jitter (after a 429 at
  least a minute, as PagerDuty asks), honouring `Retry-After`. Such a failure ends the pass: PagerDuty is
  down or throttling for every page alike, and an outage delays pages, it never loses them.
- A signal's pages go out in the order of its history (a resolve never overtakes its trigger), and a
  trigger still waiting when its signal is resolved is superseded: nobody is woken for a closed alert.
- The one repeat possible: PagerDuty accepted an event and the process died before storing that. The
  event goes again with the same `dedup_key` (the signal ID), which PagerDuty folds into the same alert.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from slack_sdk import WebClient
from sqlmodel import col, select

from bot.alerts.message import alert_link
from bot.config.settings import Settings
from bot.page.pagerduty import CONNECTION_ERRORS, Answer, post_event, resolve_event, trigger_event
from bot.page.tables import PAGE_ACCEPTED, PAGE_REJECTED, PAGE_SUPERSEDED, Page
from bot.slack.client import slack_client
from bot.store.outbox import Outbox, holder_name
from detection.signals import Status
from detection.store import SignalHistory, SignalRow, Store, get_stored, row_id, utcnow

log = logging.getLogger(__name__)

TRIGGER, RESOLVE = "trigger", "resolve"
# History actions that page, and what the page says happened.
TRIGGERS = {
    "escalated": "Escalated in Slack",
    "answered: it was not me": "The person behind the identity denied making these calls",
    "no answer in time": "The person behind the identity did not answer in time",
    "critical: follow-on abuse": "Follow-on abuse after the enumeration",
}
RESOLVES = {"not an issue": "Marked not an issue", "suppressed": "Suppressed"}
# A contact time-out pages only when it escalated: if a triager closed the alert meanwhile, silence changes nothing.
ESCALATED_ONLY = {"no answer in time"}
# History older than this when the pager first sees it is not paged: turning PAGERDUTY_ROUTING_KEY on
# must not page last month's escalations. The pager looks every 30 seconds, so only a worker stopped
# for a day (itself a failing /healthz) could let a step pass unpaged.
HORIZON = timedelta(hours=24)


@dataclass(frozen=True)
class Backoff:
    """When to try a page again after PagerDuty failed it."""

    base: float = 15.0
    cap: float = 600.0
    throttled_minimum: float = 60.0  # PagerDuty asks for "a backoff of a few minutes" after a 429

    def delay(self, attempts: int, throttled: bool, retry_after: float | None) -> float:
        delay = min(self.cap, self.base * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
        if throttled:
            delay = max(delay, self.throttled_minimum)
        return max(delay, retry_after or 0.0)


@dataclass
class PageResult:
    accepted: int = 0
    rejected: int = 0
    superseded: int = 0
    failed: int = 0  # PagerDuty failed a page this pass: it waits for its next attempt
    pending: int = 0  # still waiting after this pass
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rejected == 0 and self.failed == 0

    def line(self) -> str:
        return (f"pager: {self.accepted} accepted, {self.rejected} rejected, {self.superseded} superseded, "
                f"{self.failed} failed, {self.pending} pending")


def paging_enabled(settings: Settings) -> bool:
    return settings.pagerduty_routing_key is not None


def _pending():
    return col(Page.outcome).is_(None)


def _due(now: datetime) -> list:
    """Unsent and due: another process may have sent or rescheduled the page since it was read."""
    return [_pending(), col(Page.next_attempt_at) <= now]


PAGES = Outbox(Page, col(Page.id), col(Page.claimed_by), col(Page.claimed_until), col(Page.attempts), _due)


def pending_pages(store: Store) -> int:
    with store.session() as session:
        return session.exec(select(sa.func.count()).select_from(Page).where(_pending())).one()


# ── deriving the pages from the history ──────────────────────────────────────────────────────────────


def derive_pages(store: Store, now: datetime | None = None) -> int:
    """One `pages` row for each paging history row that has none yet; how many were added.

    A resolve is due only after a trigger of the same signal: closing an alert nobody was paged for
    sends PagerDuty nothing.
    """
    now = now or utcnow()
    paging = sa.or_(
        col(SignalHistory.action).in_([a for a in TRIGGERS if a not in ESCALATED_ONLY] + list(RESOLVES)),
        sa.and_(col(SignalHistory.action).in_(ESCALATED_ONLY), col(SignalHistory.status) == Status.ESCALATED.value),
    )
    with store.session() as session:
        steps = session.exec(
            select(SignalHistory.id, SignalHistory.signal_id, SignalHistory.action)
            .outerjoin(Page, col(Page.history_id) == col(SignalHistory.id))
            .where(col(Page.id).is_(None), col(SignalHistory.at) >= now - HORIZON, paging)
            .order_by(col(SignalHistory.id))
        ).all()
        first_trigger: dict[str, int] = dict(session.exec(
            select(Page.signal_id, sa.func.min(Page.history_id))
            .where(col(Page.event_action) == TRIGGER, col(Page.signal_id).in_({signal_id for _, signal_id, _ in steps}))
            .group_by(Page.signal_id)
        ).all())
        rows = []
        for step_id, signal_id, action in steps:
            if step_id is None:  # a primary key: never NULL
                continue
            if action in TRIGGERS:
                first_trigger.setdefault(signal_id, step_id)
            elif first_trigger.get(signal_id, step_id) >= step_id:
                continue  # nothing was triggered before it: nothing to resolve
            rows.append({"history_id": step_id, "signal_id": signal_id,
                         "event_action": TRIGGER if action in TRIGGERS else RESOLVE,
                         "created_at": now, "next_attempt_at": now, "attempts": 0})
        added = store.insert_ignoring_duplicates(session, Page, rows)
        session.commit()
    return added


# ── sending them ─────────────────────────────────────────────────────────────────────────────────────


class _Failed(Exception):
    """PagerDuty could not take the page now; it was rescheduled and the pass ends."""


def page_pending(store: Store, settings: Settings, client: WebClient | None = None, *,
                 backoff: Backoff = Backoff(), send: Callable[[str, dict], Answer] = post_event) -> PageResult:
    """One pass: derive the due pages, then send them. Never raises for PagerDuty's trouble: it is
    counted in `.failed` or `.rejected`, with the reason in `.errors`."""
    result = PageResult()
    if not paging_enabled(settings):
        return result
    derive_pages(store)
    routing_key = settings.routing_key
    client = client or slack_client(settings)
    worker, claim = holder_name(), timedelta(seconds=settings.lease_seconds)
    waiting: set[str] = set()  # signals with an earlier page still waiting: their later pages wait too
    with store.session() as session:
        candidates = session.exec(select(Page).where(_pending()).order_by(col(Page.history_id))).all()
    for page in candidates:
        if page.signal_id in waiting:
            continue
        now = utcnow()
        if page.next_attempt_at > now or not PAGES.claim(store, row_id(page), worker, now, claim):
            waiting.add(page.signal_id)  # not due yet, or another process is sending it
            continue
        try:
            # The claim is renewed while the request is in flight: a PagerDuty that answers slowly must not let
            # the claim lapse, and another process take the page over and send it a second time.
            with PAGES.renewal(store, worker, claim):
                _send(store, settings, client, page, routing_key, worker, backoff, send, result)
        except _Failed:
            break
    result.pending = pending_pages(store)
    return result


def _finish(store: Store, page: Page, worker: str, **values) -> None:
    """Store what the attempt achieved and give the claim back."""
    PAGES.release(store, page.id, worker, **values)


def _send(store: Store, settings: Settings, client: WebClient, page: Page, routing_key: str, worker: str,
          backoff: Backoff, send: Callable[[str, dict], Answer], result: PageResult) -> None:
    with store.session() as session:
        signal = get_stored(session, SignalRow, page.signal_id)
        step = get_stored(session, SignalHistory, page.history_id)
        resolved_later = session.exec(
            select(Page.history_id).where(Page.signal_id == page.signal_id, Page.event_action == RESOLVE,
                                          Page.history_id > page.history_id).limit(1)
        ).first() if page.event_action == TRIGGER else None
    if resolved_later is not None:
        _finish(store, page, worker, outcome=PAGE_SUPERSEDED, done_at=utcnow(),
                last_error=f"the signal was resolved (history #{resolved_later}) before this trigger was sent")
        result.superseded += 1
        return
    if page.event_action == TRIGGER:
        event = trigger_event(routing_key, signal, TRIGGERS[step.action], step,
                              alert_link(store, client, signal.signal_id))
    else:
        event = resolve_event(routing_key, signal.signal_id)
    try:
        answer = send(settings.pagerduty_events_url, event)
    except CONNECTION_ERRORS as exc:
        error = f"PagerDuty unreachable: {type(exc).__name__}: {exc}"[:1000]
        _reschedule(store, page, worker, error, backoff.delay(page.attempts + 1, False, None))
        result.failed += 1
        result.errors.append(f"page #{page.id} ({page.event_action} {page.signal_id}): {error}")
        raise _Failed() from exc
    if answer.accepted:
        _finish(store, page, worker, outcome=PAGE_ACCEPTED, done_at=utcnow(), last_error=None)
        result.accepted += 1
        log.info("paged %s for %s (%s)", page.event_action, page.signal_id, step.action)
    elif answer.rejected:
        _finish(store, page, worker, outcome=PAGE_REJECTED, done_at=utcnow(), last_error=answer.describe())
        result.rejected += 1
        result.errors.append(f"page #{page.id} ({page.event_action} {page.signal_id}): {answer.describe()}")
        log.warning("PagerDuty rejected the %s of %s, which will not be sent again: %s", page.event_action,
                    page.signal_id, answer.describe())
    else:  # 429, 5xx or anything unexpected: PagerDuty did not take it; try again later
        delay = backoff.delay(page.attempts + 1, answer.throttled, answer.retry_after)
        _reschedule(store, page, worker, answer.describe(), delay)
        result.failed += 1
        result.errors.append(f"page #{page.id} ({page.event_action} {page.signal_id}): {answer.describe()}")
        raise _Failed()


def _reschedule(store: Store, page: Page, worker: str, error: str, delay: float) -> None:
    log.warning("PagerDuty did not take the %s of %s (%s); trying again in %.0f s", page.event_action,
                page.signal_id, error, delay)
    _finish(store, page, worker, last_error=error, next_attempt_at=utcnow() + timedelta(seconds=delay))
