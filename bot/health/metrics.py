"""`GET /metrics` in Prometheus's text format (SPEC §11): on `serve`'s port, and on SESGUARD_METRICS_PORT in the
worker.

Two kinds of figures, and why:

- **The store's**, computed when Prometheus scrapes (`StoreFigures`, a custom collector): signals by severity
  and status, alerts posted / waiting / failed, pages, investigations, contact answers and time-outs, poll lag
  and failing places per source, the queue's backlog and the messages left for its redrive policy, and the time
  to the first triage action. A deployment runs separate processes (`web`, one or more `worker`s, a `poll
  --once` from cron) that share only the store: the worker posts an alert, `serve` takes the click on it. A
  counter kept in one process's memory would show a part of the work, start again at 0 with every restart, and
  disagree between processes. Read from the store, every process answers the same figures, whichever one did
  the work and however often it restarted; the figures the store keeps as totals that only grow (alerts posted,
  messages left for the redrive policy, first triage actions) are exposed as counters, the others as gauges.
- **The process's own**, in memory, for what the store keeps no record of: LookupEvents requests and throttles
  (`detection.sources.lookup`), failed reads per source (`bot.worker.ingest.poll_state`, in the processes that
  poll), and the client library's process figures (CPU, memory, open files). Prometheus labels each scrape with
  its instance: `sum()` over them is the deployment's.

No label carries a value from CloudTrail or Slack: no ARN, account, IP address, user or channel. The labels are
sesguard's own words (severity, status, outcome, state, answer), each mapped from the store through a fixed list
(anything else is `other`), and the source's name from the settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, make_wsgi_app, start_wsgi_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlmodel import col, select

import detection.sources.lookup  # noqa: F401  (its LookupEvents counters, at 0 until this process sends one)
from bot.alerts.tables import AlertPost
from bot.config.settings import Settings
from bot.contact.tables import Contact
from bot.desk.digest.figures import seconds_between
from bot.health.report import Health, health
from bot.investigate.tables import GATHERED, PENDING, POSTED, Investigation
from bot.page.tables import PAGE_ACCEPTED, PAGE_REJECTED, PAGE_SUPERSEDED, Page
from detection.signals import SEVERITIES, Status
from detection.store import SignalHistory, SignalRow, Store, utcnow

log = logging.getLogger(__name__)

# A counter's `_created` series (when this process made it) doubles every counter's lines and tells an alert
# rule nothing that the restart of the process (`process_start_time_seconds`) does not.
disable_created_metrics()

OTHER = "other"  # a stored value outside sesguard's own words: never passed on as a label
STATUSES = tuple(status.value for status in Status)
PAGE_OUTCOMES = ("waiting", PAGE_ACCEPTED, PAGE_REJECTED, PAGE_SUPERSEDED)
INVESTIGATION_STATES = (PENDING, GATHERED, POSTED, "failed")
CONTACT_ANSWERS = ("waiting", "yes", "no", "timeout", "undelivered")
# From the alert's storing to the first click, modal or answer of a person: a minute to three days.
FIRST_ACTION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0)


# Every family StoreFigures may answer, and its type.
STORE_FAMILIES = {
    "sesguard_signals": "gauge", "sesguard_alerts_posted": "counter", "sesguard_alerts_waiting": "gauge",
    "sesguard_alerts_oldest_waiting_seconds": "gauge", "sesguard_alerts_failed": "gauge",
    "sesguard_delivery_failing": "gauge", "sesguard_pages": "gauge", "sesguard_investigations": "gauge",
    "sesguard_contact_questions": "gauge", "sesguard_time_to_first_triage_action_seconds": "histogram",
    "sesguard_poll_lag_seconds": "gauge", "sesguard_poll_places": "gauge", "sesguard_poll_failing_places": "gauge",
    "sesguard_polling_failing": "gauge", "sesguard_queue_backlog": "gauge", "sesguard_queue_in_flight": "gauge",
    "sesguard_queue_oldest_message_seconds": "gauge", "sesguard_queue_unusable_messages": "counter",
    "sesguard_queue_ignored_messages": "counter", "sesguard_store_up": "gauge",
    "sesguard_store_scrape_seconds": "gauge",
}


def _word(value: object, words: Iterable[str]) -> str:
    return value if isinstance(value, str) and value in words else OTHER


class StoreFigures:
    """The figures read from the store at each scrape. A store that cannot be read is `sesguard_store_up 0`
    and the process's own figures still answer: the scrape itself never fails on it."""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings

    def describe(self) -> Iterator[Metric]:
        """The families a scrape may hold, without reading the store: what `?name[]=…` filters on."""
        for name, kind in STORE_FAMILIES.items():
            yield Metric(name, "", kind)

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        try:
            families = list(self._families(utcnow()))
        except Exception as exc:  # the store is away: said as a figure, and logged without the URL
            log.warning("metrics: cannot read the store: %s", type(exc).__name__)
            families, up = [], 0
        else:
            up = 1
        yield from families
        yield _gauge("sesguard_store_up", "1 when this scrape could read the store, 0 when it could not", up)
        yield _gauge("sesguard_store_scrape_seconds", "How long reading the store's figures took this scrape",
                     time.monotonic() - started)

    def _families(self, now: datetime) -> Iterator[Metric]:
        report = health(self.store, self.settings, now)
        with self.store.session() as session:
            yield from _signals(session)
            yield from _alerts(session, report)
            yield from _pages(session)
            yield from _investigations(session)
            yield from _contacts(session)
            yield _first_action(self.store, session)
        yield from _polling(report)
        yield from _queue(report)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _by(name: str, documentation: str, label: str, words: Iterable[str], rows: Iterable[tuple[object, int]],
        word: Callable[[object], str] | None = None) -> GaugeMetricFamily:
    """A gauge with one series per word (0 when none), the rows' counts added up under their word."""
    counts = dict.fromkeys([*words, OTHER], 0)
    for value, count in rows:
        key = word(value) if word else _word(value, counts)
        counts[key] = counts.get(key, 0) + int(count)
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, count in counts.items():
        if count or key != OTHER:
            family.add_metric([key], count)
    return family


def _signals(session) -> Iterator[Metric]:
    family = GaugeMetricFamily("sesguard_signals", "Signals in the store, by their severity and status now",
                               labels=["severity", "status"])
    counts: dict[tuple[str, str], int] = {(severity, status): 0 for severity in SEVERITIES for status in STATUSES}
    for severity, status, count in session.execute(
            select(SignalRow.severity, SignalRow.status, sa.func.count())
            .group_by(SignalRow.severity, SignalRow.status)).all():
        key = (_word(severity, SEVERITIES), _word(status, STATUSES))
        counts[key] = counts.get(key, 0) + int(count)
    for (severity, status), count in counts.items():
        family.add_metric([severity, status], count)
    yield family


def _alerts(session, report: Health) -> Iterator[Metric]:
    posted = session.execute(
        select(sa.func.count()).select_from(AlertPost).where(col(AlertPost.slack_ts).is_not(None))).scalar_one()
    yield CounterMetricFamily("sesguard_alerts_posted", "Alerts posted to the alert channel", value=posted)
    delivery = report.delivery
    yield _gauge("sesguard_alerts_waiting", "Alerts waiting to be posted (set-aside ones included)",
                 delivery.pending if delivery else 0)
    oldest = delivery.oldest_pending_seconds(report.checked_at) if delivery else None
    yield _gauge("sesguard_alerts_oldest_waiting_seconds", "How long the alert waiting longest has waited (0: none)",
                 oldest or 0)
    yield _gauge("sesguard_alerts_failed", "Alerts Slack refused (or that could not be rendered), set aside for "
                 "another attempt after a backoff", delivery.set_aside if delivery else 0)
    yield _gauge("sesguard_delivery_failing", "1 when delivery to Slack is failing (as /healthz says)",
                 int(report.delivery_failing))


def _pages(session) -> Iterator[Metric]:
    rows = session.execute(select(Page.outcome, sa.func.count()).group_by(Page.outcome)).all()
    yield _by("sesguard_pages", "PagerDuty events in the pager's outbox, by outcome (waiting: not sent yet)",
              "outcome", PAGE_OUTCOMES, rows, lambda outcome: "waiting" if outcome is None
              else _word(outcome, PAGE_OUTCOMES))


def _investigations(session) -> Iterator[Metric]:
    failed = sa.and_(col(Investigation.state) == POSTED, col(Investigation.error).is_not(None))
    state = sa.case((failed, "failed"), else_=col(Investigation.state))
    rows = session.execute(select(state, sa.func.count()).group_by(state)).all()
    yield _by("sesguard_investigations", "Investigations, by state (failed: given up on, the reason in the thread)",
              "state", INVESTIGATION_STATES, rows)


def _contacts(session) -> Iterator[Metric]:
    def answer(value: object) -> str:
        if value is None:
            return "waiting"
        return value if value in ("yes", "no", "timeout") else "undelivered"

    rows = session.execute(select(Contact.answer, sa.func.count()).group_by(Contact.answer)).all()
    yield _by("sesguard_contact_questions", "\"Was this you?\" questions, by answer (timeout: escalated unanswered)",
              "answer", CONTACT_ANSWERS, rows, answer)


def _first_action(store: Store, session) -> HistogramMetricFamily:
    """Every signal's time from being stored to the first action of a person (as the digest's median counts
    it): each signal has one first action, which never changes, so the buckets only grow."""
    first = (select(col(SignalRow.created_at).label("created_at"), sa.func.min(SignalHistory.at).label("first_at"))
             .join(SignalHistory, col(SignalHistory.signal_id) == col(SignalRow.signal_id))
             .where(SignalHistory.actor != "sesguard")
             .group_by(col(SignalRow.signal_id), col(SignalRow.created_at)).subquery())
    delay = seconds_between(store, first.c.first_at, first.c.created_at)
    within = [sa.func.coalesce(sa.func.sum(sa.case((delay <= bound, 1), else_=0)), 0) for bound in FIRST_ACTION_BUCKETS]
    *counts, total, seconds = session.execute(
        sa.select(*within, sa.func.count(), sa.func.coalesce(sa.func.sum(delay), 0))).one()
    buckets = [(floatToGoString(bound), int(count)) for bound, count in zip(FIRST_ACTION_BUCKETS, counts)]
    return HistogramMetricFamily(
        "sesguard_time_to_first_triage_action_seconds",
        "From an alert's storing to the first click, modal or answer of a person", sum_value=float(seconds),
        buckets=[*buckets, ("+Inf", int(total))])


def _polling(report: Health) -> Iterator[Metric]:
    lag = GaugeMetricFamily("sesguard_poll_lag_seconds", "How far behind now the source's furthest-behind place "
                            "has read (its watermark's age)", labels=["source"])
    places = GaugeMetricFamily("sesguard_poll_places", "Places (account and region) the source reads",
                               labels=["source"])
    failing = GaugeMetricFamily("sesguard_poll_failing_places", "Places (or the source's own listing) with no "
                                "successful read for three poll intervals", labels=["source"])
    sources: dict[str, list] = {}
    for place in report.sources:
        sources.setdefault(place.source, []).append(place)
    for source, rows in sources.items():
        lags = [row.lag_seconds for row in rows if row.lag_seconds is not None]
        if lags:
            lag.add_metric([source], max(lags))
        places.add_metric([source], sum(not row.whole_source for row in rows))
        failing.add_metric([source], sum(row.failing for row in rows))
    yield from (lag, places, failing)
    yield _gauge("sesguard_polling_failing", "1 when polling is failing (as /healthz says)",
                 int(report.polling_failing))


def _queue(report: Health) -> Iterator[Metric]:
    """SESGUARD_SOURCE=sqs: the queue as its consumers last saw it (`bot.worker.tables.QueueState`)."""
    if report.queue is None:
        return
    row = report.queue.row
    if row is not None and row.backlog is not None:
        yield _gauge("sesguard_queue_backlog", "Messages waiting in the queue (SQS's ApproximateNumberOfMessages)",
                     row.backlog)
        yield _gauge("sesguard_queue_in_flight", "Messages being worked on (ApproximateNumberOfMessagesNotVisible)",
                     row.in_flight or 0)
    if row is not None and row.oldest_received_seconds is not None:
        yield _gauge("sesguard_queue_oldest_message_seconds",
                     "Age of the oldest message of the latest batch when it was received", row.oldest_received_seconds)
    yield CounterMetricFamily("sesguard_queue_unusable_messages", "Messages that could not be used, left on the "
                              "queue for its redrive policy", value=row.unusable if row else 0)
    yield CounterMetricFamily("sesguard_queue_ignored_messages", "Messages read and deleted as not for sesguard "
                              "(test events, digest files, other events)", value=row.ignored if row else 0)


class _ProcessFigures:
    """This process's own metrics: what the client library's default registry holds."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()

    def describe(self) -> Iterable[Metric]:
        return REGISTRY.collect()  # in memory: as cheap as naming them


def registry(store: Store, settings: Settings) -> CollectorRegistry:
    """What `/metrics` answers: the process's figures, then the store's. A registry of its own per server, so
    that the store is read only by a scrape (and a test's second app does not register the store twice)."""
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_ProcessFigures())
    combined.register(StoreFigures(store, settings))
    return combined


def metrics_app(store: Store, settings: Settings) -> Callable:
    """The WSGI app `serve` answers `GET /metrics` with (content negotiation and `name[]` filters included)."""
    return make_wsgi_app(registry(store, settings))


def serve_metrics(store: Store, settings: Settings, port: int) -> int:
    """The worker's `GET /metrics` on `port` (0: any free one), in a thread of its own; the port bound."""
    server, _ = start_wsgi_server(port, registry=registry(store, settings))
    return int(server.server_port)
