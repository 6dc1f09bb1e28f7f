"""The triage figures of a period, computed in the store with SQL: nothing loads every row.

- Signals raised in the period (their `created_at`: when sesguard stored them), by severity and by outcome
  (their status now): one `GROUP BY`.
- Alerts open now (`new`, `contacting`, `confirmed`, `escalated`), whenever they were raised: one count.
- Time to the first triage action: from the signal being stored to the first row of its history written by
  a person (any actor but sesguard: a button, a modal, an answer), for the signals of the period that got
  one. The median and the 90th percentile by the nearest-rank method (the value at rank ⌈p·n⌉ of the n
  sorted times; the median of an even count is the lower middle one), computed with window functions
  (`ROW_NUMBER() OVER (ORDER BY …)`, `COUNT(*) OVER ()`) and integer arithmetic for the ceiling
  (`(n·p + 99) / 100`), which SQLite (3.25 and later) and PostgreSQL both have. The one part that differs is
  a time difference in seconds: `(julianday(a) − julianday(b)) · 86400` on SQLite, `EXTRACT(EPOCH FROM a − b)`
  on PostgreSQL (`seconds_between`).
- Contact answer rate: of the questions asked in the period and closed, the share answered (yes or no)
  rather than timed out; undelivered questions and those still waiting are counted apart.
- The suppressions that covered the most signals of the period: `GROUP BY suppression_id`, the top five.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.contact.tables import Contact
from detection.signals import Status
from detection.store import SignalHistory, SignalRow, Store, SuppressionRow, utcnow

OPEN = (Status.NEW.value, Status.CONTACTING.value, Status.CONFIRMED.value, Status.ESCALATED.value)
TOP_SUPPRESSIONS = 5


@dataclass
class Figures:
    since: datetime
    until: datetime
    signals: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    open_now: int = 0
    acted_on: int = 0  # signals of the period with a first triage action
    median_seconds: float | None = None
    p90_seconds: float | None = None
    answered: int = 0
    timed_out: int = 0
    waiting: int = 0
    undelivered: int = 0
    top_suppressions: list[tuple[int, str, int]] = field(default_factory=list)  # (id, identity, signals)

    @property
    def answer_rate(self) -> float | None:
        closed = self.answered + self.timed_out
        return self.answered / closed if closed else None


def seconds_between(store: Store, later, earlier):
    """`later − earlier` in seconds, as a SQL expression of this store's dialect."""
    if store.is_postgres:
        return sa.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _time_to_first_action(store: Store, session, in_period) -> tuple[int, float | None, float | None]:
    # the signals of the period (by the index on created_at), each with its first row by a person
    first = (select(col(SignalRow.created_at).label("created_at"), sa.func.min(SignalHistory.at).label("first_at"))
             .join(SignalHistory, col(SignalHistory.signal_id) == col(SignalRow.signal_id))
             .where(in_period, SignalHistory.actor != "sesguard")
             .group_by(col(SignalRow.signal_id), col(SignalRow.created_at)).subquery())
    delays = select(seconds_between(store, first.c.first_at, first.c.created_at).label("seconds")).subquery()
    ranked = select(delays.c.seconds, sa.func.row_number().over(order_by=delays.c.seconds).label("rank"),
                    sa.func.count().over().label("n")).subquery()

    def at_percentile(p: int):
        # the nearest rank ⌈n·p/100⌉, in integer arithmetic (`//` is integer division on both dialects)
        return sa.func.max(sa.case((ranked.c.rank == (ranked.c.n * p + 99) // 100, ranked.c.seconds)))

    n, median, p90 = session.execute(select(sa.func.coalesce(sa.func.max(ranked.c.n), 0), at_percentile(50),
                                            at_percentile(90))).one()
    return int(n), (float(median) if median is not None else None), (float(p90) if p90 is not None else None)


def figures(store: Store, days: float, now: datetime | None = None) -> Figures:
    until = now or utcnow()
    since = until - timedelta(days=days)
    result = Figures(since, until)
    in_period = sa.and_(col(SignalRow.created_at) >= since, col(SignalRow.created_at) < until)
    with store.session() as session:
        for severity, status, count in session.execute(
                select(SignalRow.severity, SignalRow.status, sa.func.count()).where(in_period)
                .group_by(SignalRow.severity, SignalRow.status)).all():
            result.signals += count
            result.by_severity[severity] = result.by_severity.get(severity, 0) + count
            result.by_outcome[status] = result.by_outcome.get(status, 0) + count
        result.open_now = session.execute(
            select(sa.func.count()).select_from(SignalRow).where(col(SignalRow.status).in_(OPEN))).scalar_one()
        result.acted_on, result.median_seconds, result.p90_seconds = _time_to_first_action(store, session, in_period)
        asked = sa.and_(col(Contact.asked_at) >= since, col(Contact.asked_at) < until)
        for answer, count in session.execute(
                select(Contact.answer, sa.func.count()).where(asked).group_by(Contact.answer)).all():
            if answer in ("yes", "no"):
                result.answered += count
            elif answer == "timeout":
                result.timed_out += count
            elif answer is None:
                result.waiting += count
            else:
                result.undelivered += count
        covered = sa.func.count().label("covered")
        result.top_suppressions = [(sid, identity, n) for sid, identity, n in session.execute(
            select(SignalRow.suppression_id, SuppressionRow.identity, covered)
            .join(SuppressionRow, col(SuppressionRow.id) == col(SignalRow.suppression_id))
            .where(in_period, col(SignalRow.suppression_id).is_not(None))
            .group_by(col(SignalRow.suppression_id), col(SuppressionRow.identity))
            .order_by(covered.desc(), col(SignalRow.suppression_id)).limit(TOP_SUPPRESSIONS)).all()]
    return result
