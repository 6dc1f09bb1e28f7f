"""`sesguard worker` (SPEC §3): an APScheduler 3 BlockingScheduler running the poll, the alert outbox,
automatic investigations (SPEC §6), contact time-outs, the pager (with PAGERDUTY_ROUTING_KEY) and
housekeeping.

Only one worker runs the jobs: the one holding the `scheduler` lease. Others wait, asking again every
third of SESGUARD_LEASE_SECONDS, and take over once the holder stops renewing (it died, or lost the
database). A holder that finds its lease taken stops its jobs and goes back to waiting. Every job runs
coalesced with at most one instance, so a slow pass is never stacked behind itself.

SIGTERM and Ctrl-C stop the worker cleanly: no new job starts, a running poll ends between two
requests (its account/region is simply read again next time), the lease is handed back, exit 0.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlmodel import col

from bot.config.errors import SettingsError
from bot.config.settings import Settings
from bot.config.startup import start, stop_on_signals
from bot.context.tables import ContextLookup
from bot.health.metrics import serve_metrics
from bot.investigate.reader import SharedReader
from bot.page.pager import paging_enabled
from bot.store.lease import Lease
from bot.worker.ingest.backfill import backfill_pass
from bot.worker.ingest.consume import consume_until_stopped
from bot.worker.ingest.handover import gather_context_pass, notify_pending, page_pending_pass
from bot.worker.ingest.poll import poll_once
from bot.worker.ingest.sources import make_source
from detection.sources.lookup import LookupSource
from detection.sources.pulled import Source
from detection.sources.s3_trail import S3Object
from detection.store import EventRow, KnownIdentity, Store, utcnow

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
HOUSEKEEPING_SECONDS = 3600.0
# The outboxes (alerts, pages) and contact deadlines are looked at at least this often, however long
# the poll interval.
OUTBOX_SECONDS = 30.0
# Open App Home tabs are brought up to date this often (what changed without a click: new alerts, time-outs).
HOME_SECONDS = 5.0
# Stored events are kept at least this long, whatever the retention says: de-duplication needs them.
MIN_RETENTION = timedelta(days=2)
# Forgotten identities are deleted a day after they count as forgotten (a late event may still touch them).
FORGET_MARGIN = timedelta(days=1)
# The triage context's cached lookups are used for an hour; older ones are deleted after a day.
CACHE_KEPT = timedelta(days=1)


# A job of the worker, run by the scheduler with no argument but the worker. What it returns (a job's result,
# with `failed` counts) is for `poll --once`; the scheduler ignores it.
Job = Callable[["Worker"], object]


class _Quiet(logging.Filter):
    """A poll that outlasts its interval is normal (coalesce); APScheduler's warning about it is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def _failure_logged(what: str) -> Callable[[Job], Job]:
    """A job whose failure is logged as "<what> failed", with its traceback, and goes no further: the job runs
    again at its next interval, and one job's trouble (Slack down, the database away) never stops the others."""

    def wrap(job: Job) -> Job:
        @functools.wraps(job)
        def logged(worker: Worker) -> object:
            try:
                return job(worker)
            except Exception:
                log.exception("%s failed", what)
                return None

        return logged

    return wrap


class Worker:
    def __init__(self, settings: Settings, store: Store, source: Source | None = None,
                 stop: threading.Event | None = None):
        self.settings, self.store = settings, store
        self.source = source or make_source(settings, store)
        self.stop = stop or threading.Event()
        self.lease = Lease(store, SCHEDULER_LEASE, settings.lease_seconds)
        # Investigations read CloudTrail through the poll's own LookupEvents source when there is one.
        self.investigation_reader = SharedReader(
            settings, store, self.source if isinstance(self.source, LookupSource) else None)
        self.renew_every = settings.lease_seconds / 3

    def run(self) -> int:
        log.info("worker %s started; waiting for the scheduler lease", self.lease.holder)
        consumer = self._start_consumer()
        while not self.stop.is_set():
            if self._acquire():
                log.info("worker %s holds the scheduler lease: running the jobs", self.lease.holder)
                self._run_jobs()
                if not self.stop.is_set():
                    log.warning("worker %s lost the scheduler lease; waiting to take it again", self.lease.holder)
            else:
                self.stop.wait(self.renew_every)
        if consumer is not None:
            consumer.join()
        log.info("worker %s stopped", self.lease.holder)
        return 0

    def _start_consumer(self) -> threading.Thread | None:
        """SESGUARD_SOURCE=sqs: every worker consumes the queue, lease or not (SQS shares the messages out)."""
        if self.settings.source != "sqs":
            return None
        thread = threading.Thread(target=consume_until_stopped, name="sqs-consumer", daemon=True,
                                  args=(self.settings, self.store, self.source, self.stop))
        thread.start()
        return thread

    def once(self) -> list[str]:
        """`poll --once` after its ingestion pass (SPEC §2): every other job of the worker, once, so that a cron
        or Kubernetes CronJob deployment loses nothing the scheduler would have done — investigations, contact
        time-outs, the learning reports, the digest, suppression reminders, the open Home tabs, housekeeping, the
        triage context — and then the alert and page outboxes again (an investigation or a time-out may have
        escalated). Each job is due by its own rule (a report once its learning ended, the digest once its
        hour has come), as under the scheduler. One line per job that failed, for stderr; none when the pass
        went through."""
        jobs: list[tuple[str, Job]] = [
            ("investigations", Worker.investigate_alerts), ("contact time-outs", Worker.escalate_overdue_contacts),
            ("learning reports", Worker.post_learning_reports), ("digest", Worker.post_digest),
            ("suppression reminders", Worker.remind_suppressions), ("Home tabs", Worker.refresh_home_tabs),
            ("housekeeping", Worker.housekeeping)]
        failures = []
        for what, job in jobs:
            if self.stop.is_set():
                break
            if job is Worker.post_learning_reports and not self.settings.learning_report:
                continue
            try:
                result = job.__wrapped__(self)  # type: ignore[attr-defined]  # the job itself, unlogged: it is reported
            except Exception as exc:
                log.exception("%s failed", what)
                failures.append(f"{what}: FAILED: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            if getattr(result, "failed", 0):
                failures.append(f"{what}: FAILED: {result.failed} not sent; tried again on the next pass")
        if not self.stop.is_set():  # the alerts posted by the queue's drain have none yet (the poll gathered its own)
            _, context_error = gather_context_pass(self.store, self.settings, self.stop)
            if context_error is not None:
                failures.append(f"triage context: FAILED: {context_error}")
        if not self.stop.is_set():
            notified, error = notify_pending(self.store, self.settings, self.stop)
            if error is not None:
                failures.append(f"notifier: FAILED: {error}")
            elif notified is not None and not notified.ok:
                failures.append(f"notifier: FAILED: {notified.line()}")
        if not self.stop.is_set() and paging_enabled(self.settings):
            paged, page_error = page_pending_pass(self.store, self.settings)
            if page_error is not None:
                failures.append(f"pager: FAILED: {page_error}")
            elif paged is not None and not paged.ok:
                failures.append(f"pager: FAILED: {paged.line()}")
        return failures

    def _acquire(self) -> bool:
        try:
            return self.lease.acquire()
        except Exception:  # the database is unreachable: keep waiting, it may come back
            log.exception("cannot reach the database to take the scheduler lease")
            return False

    # ── the scheduler ────────────────────────────────────────────────────────────────────────────

    def _run_jobs(self) -> None:
        scheduler = BlockingScheduler(job_defaults=JOB_DEFAULTS, timezone=UTC)
        now = datetime.now(UTC)
        poll_seconds = self.settings.poll_seconds
        contact_seconds = min(OUTBOX_SECONDS, poll_seconds, max(0.1, self.settings.contact_timeout_minutes * 60 / 4))
        jobs = [
            (self.poll, poll_seconds),
            (self.post_outbox, min(OUTBOX_SECONDS, poll_seconds)),
            (self.investigate_alerts, min(OUTBOX_SECONDS, poll_seconds)),
            (self.gather_context, min(OUTBOX_SECONDS, poll_seconds)),
            (self.escalate_overdue_contacts, contact_seconds),
            (self.housekeeping, max(HOUSEKEEPING_SECONDS, poll_seconds)),
            (self.refresh_home_tabs, min(HOME_SECONDS, poll_seconds)),
            (self.remind_suppressions, min(OUTBOX_SECONDS, poll_seconds)),
        ]
        if self.settings.learning_report:
            jobs.append((self.post_learning_reports, min(OUTBOX_SECONDS, poll_seconds)))
        if self.settings.digest_hour is not None:
            jobs.append((self.post_digest, min(OUTBOX_SECONDS, poll_seconds)))
        if paging_enabled(self.settings):
            jobs.append((self.send_pages, min(OUTBOX_SECONDS, poll_seconds)))
        for job, seconds in jobs:
            scheduler.add_job(job, "interval", seconds=seconds, next_run_time=now, id=job.__name__,
                              name=job.__name__)
        started = threading.Event()
        scheduler.add_listener(lambda _: started.set(), EVENT_SCHEDULER_STARTED)
        keeper = threading.Thread(target=self._keep_lease, args=(scheduler, started), name="lease-keeper", daemon=True)
        keeper.start()
        scheduler.start()  # returns once the keeper has shut it down
        keeper.join()

    def _keep_lease(self, scheduler: BlockingScheduler, started: threading.Event) -> None:
        """Renew the lease while the jobs run; on stop or a lost lease, shut the scheduler down, waiting
        for the running jobs (which is what makes the stop fall between jobs), then hand the lease back."""
        started.wait()
        held = True
        last_renewed = utcnow()
        while not self.stop.wait(self.renew_every):
            try:
                held = self.lease.renew()
                last_renewed = utcnow() if held else last_renewed
            except Exception:  # the database is away: we still hold the lease until it would lapse
                log.exception("cannot renew the scheduler lease")
                held = utcnow() - last_renewed < timedelta(seconds=self.settings.lease_seconds)
            if not held:
                break
        scheduler.shutdown(wait=True)
        if held:
            try:
                self.lease.release()
            except Exception:
                log.exception("cannot hand the scheduler lease back; it lapses by itself")

    # ── the jobs ─────────────────────────────────────────────────────────────────────────────────

    @_failure_logged("the poll pass")
    def poll(self) -> None:
        if self.settings.source == "sqs":  # the queue is consumed apart; the poll only backfills
            if self.source is not None:
                backfill_pass(self.settings, self.store, self.source, self.stop)
        else:
            poll_once(self.settings, self.store, self.source, stop=self.stop)

    def post_outbox(self) -> None:
        if not self.stop.is_set():
            notify_pending(self.store, self.settings, self.stop)

    def send_pages(self) -> None:
        if not self.stop.is_set():
            page_pending_pass(self.store, self.settings)

    @_failure_logged("investigating alerts")
    def investigate_alerts(self) -> None:
        """Investigate new alerts without a click, and finish investigations a process left (SPEC §6)."""
        from bot.investigate import runs
        from bot.slack.client import slack_client

        requested = runs.enqueue_automatic(self.store, self.settings)
        posted = runs.carry_out_waiting(self.store, self.settings, slack_client(self.settings),
                                        self.investigation_reader, stop=self.stop.is_set)
        if requested or posted:
            log.info("investigations: %d requested automatically, %d summaries posted", requested, posted)

    def gather_context(self) -> None:
        """The triage context (SPEC §10) of each alert once it is posted, updated in place."""
        if not self.stop.is_set():
            gather_context_pass(self.store, self.settings, self.stop)

    @_failure_logged("escalating overdue contacts")
    def escalate_overdue_contacts(self) -> None:
        from bot.contact.questions import escalate_overdue

        escalated = escalate_overdue(self.store, self.settings)
        if escalated:
            log.info("escalated %d signals whose person did not answer in time", escalated)

    @_failure_logged("refreshing the open Home tabs")
    def refresh_home_tabs(self) -> None:
        """The triage desk (SPEC §8): open Home tabs show what changed since they were published."""
        from bot.desk.home.refresh import refresh_open
        from bot.slack.client import slack_client

        refresh_open(self.store, self.settings, slack_client(self.settings))

    @_failure_logged("reminding of expiring suppressions")
    def remind_suppressions(self) -> object:
        """Suppression hygiene (SPEC §8): the author's DM a day before a suppression expires, once."""
        from bot.desk.reminders import remind
        from bot.slack.client import slack_client

        reminded = remind(self.store, slack_client(self.settings))
        if reminded.sent or reminded.found:
            log.info("reminded %d authors of suppressions about to expire", reminded.sent + reminded.found)
        return reminded

    @_failure_logged("posting the learning reports")
    def post_learning_reports(self) -> object:
        """The learning report (SPEC §8): once per account, when its learning period is over."""
        from bot.desk.learning.report import post_reports
        from bot.slack.client import slack_client

        reported = post_reports(self.store, self.settings, slack_client(self.settings))
        for account in reported.posted:
            log.info("posted the learning report of account %s", account)
        return reported

    @_failure_logged("posting the daily digest")
    def post_digest(self) -> None:
        """The daily digest (SPEC §8, SESGUARD_DIGEST_HOUR): once a day, across every worker."""
        from bot.desk.digest.daily import post_digest
        from bot.slack.client import slack_client

        if post_digest(self.store, self.settings, slack_client(self.settings)):
            log.info("posted the daily digest")

    @_failure_logged("housekeeping")
    def housekeeping(self) -> None:
        pruned = housekeeping(self.store, self.settings)
        log.info("housekeeping: %s", ", ".join(f"{count} {what}" for what, count in pruned.items()))


def housekeeping(store: Store, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Delete stored events (and remembered S3 objects) past the retention, and identities forgotten
    for a day; how many rows of each went."""
    now = now or utcnow()
    keep_since = now - max(timedelta(days=settings.event_retention_days), MIN_RETENTION)
    forgotten_before = now - timedelta(days=settings.forget_days) - FORGET_MARGIN
    statements = {
        "events past the retention": sa.delete(EventRow).where(col(EventRow.event_time) < keep_since),
        "S3 objects past the retention": sa.delete(S3Object).where(col(S3Object.processed_at) < keep_since),
        "forgotten identities": sa.delete(KnownIdentity).where(col(KnownIdentity.last_seen) < forgotten_before),
        # the triage context's cache keeps an answer an hour; a day-old one is only space
        "cached context lookups": sa.delete(ContextLookup).where(col(ContextLookup.fetched_at) < now - CACHE_KEPT),
    }
    pruned = {}
    with store.session() as session:
        for what, statement in statements.items():
            pruned[what] = session.exec(statement).rowcount or 0
        session.commit()
    return pruned


def command() -> int:
    """`sesguard worker`."""
    settings, store = start("SLACK_BOT_TOKEN", "SLACK_ALERT_CHANNEL")
    logging.getLogger("apscheduler.scheduler").addFilter(_Quiet())
    if settings.metrics_port is not None:
        # Every worker answers, lease or not: a waiting one still consumes the queue and reports the store.
        try:
            port = serve_metrics(store, settings, settings.metrics_port)
        except OSError as exc:  # the port is taken, or not ours to bind: one line naming the setting
            raise SettingsError(f"sesguard: cannot listen on SESGUARD_METRICS_PORT={settings.metrics_port}: "
                                f"{exc.strerror or type(exc).__name__}") from None
        log.info("metrics on http://0.0.0.0:%d/metrics", port)
    worker = Worker(settings, store)
    stop_on_signals(worker.stop)
    return worker.run()
