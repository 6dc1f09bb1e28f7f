"""The worker's triage-context job (SPEC §10): for each posted alert, gather its context once and update the
alert in place.

The alert is posted first, by the notifier, whatever the lookups do; then, within one pass of this job:
1. `enqueue`: a `pending` row per posted, unsuppressed alert of the last day that has none;
2. `gather_pending` claims each (the one outbox claim: one process per alert), reads the facts — every
   lookup read-only, through the signal's account, paced and cached; a denied or failed one is stored as
   "unknown (reason)", counted and logged — and stores them with the alert marked changed, in one transaction;
3. the alert is re-rendered in place (`chat.update`). When Slack is away, the notifier updates it at its next
   pass: the alert counts as grown since it was posted.
A process that dies half-way leaves the row claimed until its claim lapses; another takes it up. After
`MAX_ATTEMPTS` the facts are stored as unknown rather than tried for ever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from slack_sdk import WebClient
from sqlmodel import col, select

from bot.alerts.message import refresh_alert
from bot.alerts.tables import AlertPost
from bot.config.settings import Settings
from bot.context.facts import Context, OwnerFacts
from bot.context.gather import Lookups, gather
from bot.context.tables import DONE, PENDING, TriageContext
from bot.store.outbox import Outbox, holder_name
from detection.signals import Status
from detection.store import SignalRow, Store, utcnow

log = logging.getLogger(__name__)

# Alerts posted longer ago than this get no context: turning the feature on (an upgrade) must not send every
# alert of the past through IAM and Slack at once.
REACH = timedelta(days=1)
MAX_ATTEMPTS = 3
GAVE_UP = "gathering was interrupted too often (see the log)"


@dataclass
class GatherResult:
    gathered: int = 0
    unknown: int = 0  # lookups denied or failed, over every alert of the pass
    updated: int = 0  # alerts updated in Slack at once (the others at the notifier's next pass)

    def line(self) -> str:
        return (f"triage context: {self.gathered} alerts gathered, {self.unknown} lookups unknown, "
                f"{self.updated} alerts updated")


def _pending(now: datetime) -> list:
    return [col(TriageContext.state) == PENDING]


CONTEXTS = Outbox(TriageContext, col(TriageContext.signal_id), col(TriageContext.claimed_by),
                  col(TriageContext.claimed_until), col(TriageContext.attempts), _pending)


def enqueue(store: Store, now: datetime | None = None) -> int:
    """A pending row for every posted, unsuppressed alert of the last day that has none; how many."""
    now = now or utcnow()
    has_one = sa.exists().where(col(TriageContext.signal_id) == col(SignalRow.signal_id))
    with store.session() as session:
        signal_ids = session.exec(
            select(SignalRow.signal_id).join(AlertPost, col(AlertPost.signal_id) == col(SignalRow.signal_id))
            .where(col(AlertPost.slack_ts).is_not(None), col(SignalRow.status) != Status.SUPPRESSED.value,
                   col(SignalRow.created_at) >= now - REACH, ~has_one)
        ).all()
        added = store.insert_ignoring_duplicates(
            session, TriageContext, [{"signal_id": signal_id, "state": PENDING, "requested_at": now,
                                      "attempts": 0, "unknown": 0} for signal_id in signal_ids])
        session.commit()
    return added


def waiting(store: Store, now: datetime | None = None) -> list[str]:
    now = now or utcnow()
    with store.session() as session:
        return list(session.exec(
            select(TriageContext.signal_id).where(*_pending(now), CONTEXTS.free(now))
            .order_by(col(TriageContext.requested_at))
        ).all())


def gather_pending(store: Store, settings: Settings, client: WebClient, stop=lambda: False) -> GatherResult:
    """The job: enqueue, then gather every context nobody is gathering."""
    enqueue(store)
    result = GatherResult()
    ids = waiting(store)
    if not ids:
        return result
    lookups = Lookups.start(store, settings, client)
    for signal_id in ids:
        if stop():
            break
        try:
            _gather_one(store, settings, client, lookups, signal_id, result)
        except Exception:  # one alert's trouble must not keep the others waiting
            log.exception("gathering the triage context of %s failed", signal_id)
    return result


def _gather_one(store: Store, settings: Settings, client: WebClient, lookups: Lookups, signal_id: str,
                result: GatherResult) -> None:
    holder = holder_name()
    row = CONTEXTS.claim(store, signal_id, holder, utcnow(), timedelta(seconds=settings.lease_seconds))
    if row is None:
        return
    with store.session() as session:
        signal = session.get(SignalRow, signal_id)
    if signal is None:
        CONTEXTS.release(store, signal_id, holder, state=DONE)
        return
    with CONTEXTS.renewal(store, holder, timedelta(seconds=settings.lease_seconds)):
        if row.attempts > MAX_ATTEMPTS:
            context = Context(owner=OwnerFacts(unknown=GAVE_UP))
        else:
            context = gather(lookups, signal)
    unknown = context.unknown
    now = utcnow()
    with store.session() as session:
        kept = session.exec(
            sa.update(TriageContext).where(col(TriageContext.signal_id) == signal_id,
                                           col(TriageContext.claimed_by) == holder)
            .values(facts=context.to_dict(), owner_slack_id=context.owner.slack_id, unknown=unknown,
                    gathered_at=now, state=DONE)
        ).rowcount
        if kept != 1:  # our claim lapsed and another process took the row: it stores its own facts
            session.rollback()
            return
        # The alert has changed: if the update below does not reach Slack, the notifier's next pass makes it.
        session.execute(sa.update(SignalRow).where(col(SignalRow.signal_id) == signal_id).values(updated_at=now))
        session.commit()
    CONTEXTS.release(store, signal_id, holder)
    result.gathered += 1
    result.unknown += unknown
    if unknown:
        log.warning("triage context of %s: %d lookups unknown", signal_id, unknown)
    try:
        refresh_alert(store, client, signal_id, settings)
        result.updated += 1
    except Exception as exc:  # Slack away or refusing: stored, and the notifier updates the alert later
        log.warning("alert %s not updated with its triage context yet (the notifier will): %s", signal_id,
                    f"{type(exc).__name__}: {exc}"[:300])
