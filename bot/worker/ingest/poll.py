"""One poll pass (SPEC §3): pull CloudTrail per account and region, detect, store, then post what is pending.

- The first poll of an account/region is its backfill: SESGUARD_BACKFILL_DAYS of history, learned without
  alerts; the account's start of observation becomes the start of that history, so that alerting starts
  at once when the backfill covers the learning period.
- Every later poll reads [watermark − SESGUARD_LOOKBACK_MINUTES, now]; the store drops eventIDs it has
  already, so a late event is caught once and nothing is processed twice. An event first fetched by a
  later poll is detected normally, whatever its eventTime.
- The watermark moves only after the pulled events are stored: a pass that dies half-way is repeated.
- One process at a time polls an account (a lease per source and account): all of an account's
  regions are detected together, so that one identity calling in two regions at once is one signal.
- Accounts are polled side by side (SPEC §7): every account/region read of a pass goes through one pool
  of SESGUARD_POLL_CONCURRENCY threads, so that a pass over hundreds of accounts takes the round trips
  of the slowest few rather than of all of them one after another. The pace per account and region stays
  the store's (`detection.pacing`): more threads never means more than 2 requests a second to one place.
- Per account/region health goes to `poll_state` (last success, last error, consecutive failures, since
  when a first success is awaited), and the source's own listing to its row `*`/`*`; places the source
  no longer lists are retired. `bot.health.report` reads it for `/healthz` and `/sesguard status`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from bot.alerts.notifier import NotifyResult
from bot.config.settings import Settings
from bot.context.jobs import GatherResult
from bot.page.pager import PageResult
from bot.store.lease import Lease, poll_lease_name
from bot.worker.ingest import poll_state
from bot.worker.ingest.handover import gather_context_pass, notify_pending, page_pending_pass
from bot.worker.ingest.sources import make_source
from bot.worker.tables import EngineBackfill
from detection.scan import detect
from detection.sources.pulled import (
    AccountRegion,
    Interrupted,
    Pulled,
    Source,
    SourceError,
)
from detection.sources.sql.engine import is_engine_url
from detection.store import Store, utcnow

log = logging.getLogger(__name__)



@dataclass
class PlaceOutcome:
    place: AccountRegion
    backfill: bool = False
    start: datetime | None = None
    end: datetime | None = None
    records: int = 0
    new_calls: int = 0
    signals: int = 0
    bad: int = 0
    error: str | None = None
    skipped: str | None = None  # why this pass left it alone (not an error)

    def window(self) -> tuple[datetime, datetime]:
        """The span this pass reads; a place skipped before its window was set has none."""
        if self.start is None or self.end is None:
            raise ValueError(f"{self.place} was given no window to read")
        return self.start, self.end

    def line(self, source: str) -> str:
        where = f"{source} {self.place}"
        if self.skipped:
            return f"{where}: skipped ({self.skipped})"
        if self.error:
            return f"{where}: FAILED: {self.error}"
        kind = "backfill (learned silently)" if self.backfill else "poll"
        return (f"{where}: {kind} {self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}Z: {self.records} records, "
                f"{self.new_calls} new matching calls, {self.signals} signals, {self.bad} bad records skipped")


@dataclass
class PollResult:
    source: str
    places: list[PlaceOutcome] = field(default_factory=list)
    source_error: str | None = None
    notified: NotifyResult | None = None
    notify_error: str | None = None
    paged: PageResult | None = None
    page_error: str | None = None
    # the triage context of the alerts just posted (SPEC §10); a lookup that failed never fails the pass
    context: GatherResult | None = None
    context_error: str | None = None

    @property
    def ok(self) -> bool:
        """The pass completed: every source read, every Slack post and every page went through."""
        notified_ok = self.notified is None or self.notified.ok
        paged_ok = self.paged is None or self.paged.ok
        return (self.source_error is None and not any(p.error for p in self.places)
                and self.notify_error is None and notified_ok and self.page_error is None and paged_ok)

    def lines(self) -> list[str]:
        lines = [f"{self.source}: FAILED: {self.source_error}"] if self.source_error else []
        lines += [outcome.line(self.source) for outcome in self.places]
        if self.notify_error:
            lines.append(f"notifier: FAILED: {self.notify_error}")
        elif self.notified is not None:
            lines.append(self.notified.line())
        if self.page_error:
            lines.append(f"pager: FAILED: {self.page_error}")
        elif self.paged is not None:
            lines.append(self.paged.line())
        if self.context_error:
            lines.append(f"triage context: FAILED: {self.context_error}")
        elif self.context is not None and (self.context.gathered or self.context.unknown):
            lines.append(self.context.line())
        return lines


def poll_once(settings: Settings, store: Store, source: Source | None = None, *,
              stop: threading.Event | None = None, notify: bool = True, only_new_places: bool = False) -> PollResult:
    """Pull every account and region, detect and store; then, with `notify`, one notifier pass, with
    PAGERDUTY_ROUTING_KEY one pager pass, and one triage-context pass over the alerts posted. With
    `only_new_places`, only the places never polled (their backfill: `bot.worker.ingest.backfill`)."""
    source = source or make_source(settings, store)
    if source is None:
        raise ValueError("SESGUARD_SOURCE=sqs without SESGUARD_BACKFILL_SOURCE: the queue is consumed, nothing polled")
    stop = stop or threading.Event()
    result = PollResult(source.name)
    try:
        places = sorted(source.places())
    except SourceError as exc:
        result.source_error = str(exc)
        poll_state.record_failure(store, source.name, poll_state.WHOLE_SOURCE, str(exc))
        places = []
    else:
        # A source may list what it could while part of its listing failed (an organisation's ListAccounts):
        # the places are read, and the failure is the whole source's.
        listing_error = getattr(source, "listing_error", None)
        poll_state.record_listing(store, source.name, places, listed=listing_error is None)
        if listing_error:
            result.source_error = listing_error
            poll_state.record_failure(store, source.name, poll_state.WHOLE_SOURCE, listing_error)
        if only_new_places:
            done = poll_state.watermarks(store, source.name, places)
            places = [place for place in places if place not in done]
    if places and not stop.is_set():
        engine_error = engine_backfill(settings, store, places, stop)
        if engine_error:
            result.source_error = engine_error
            poll_state.record_failure(store, source.name, poll_state.WHOLE_SOURCE, engine_error)
    result.places += _poll_accounts(settings, store, source, places, stop)
    for outcome in result.places:
        log.log(logging.WARNING if outcome.error else logging.INFO, "%s", outcome.line(source.name))
    if notify and not stop.is_set():
        result.notified, result.notify_error = notify_pending(store, settings, stop)
    if notify and not stop.is_set() and settings.pagerduty_routing_key is not None:
        result.paged, result.page_error = page_pending_pass(store, settings)
    if notify and not stop.is_set():
        result.context, result.context_error = gather_context_pass(store, settings, stop)
    return result


# ── the accounts, side by side ───────────────────────────────────────────────────────────────────────


def _poll_accounts(settings: Settings, store: Store, source: Source, places: list[AccountRegion],
                   stop: threading.Event) -> list[PlaceOutcome]:
    """Every account of the listing, at most SESGUARD_POLL_CONCURRENCY reads at once over all of them.

    Two pools: the reads (one task per account/region, the only ones that wait on the network) and the
    accounts (lease, then wait for its reads, then detect). An account task only waits on read tasks,
    never the reverse, so the pools cannot deadlock; and as at most as many accounts as reads are under
    way, a read queued behind the others waits for a few round trips, never long enough to let its
    account's lease lapse. Outcomes come back in the listing's order whatever finished first."""
    accounts = [(account, [p.region for p in group])
                for account, group in groupby(places, key=lambda place: place.account_id)]
    if not accounts:
        return []
    concurrency = settings.poll_concurrency
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="poll-read") as reads, \
            ThreadPoolExecutor(max_workers=min(concurrency, len(accounts)), thread_name_prefix="poll-account") as pool:
        def one(account: str, regions: list[str]) -> list[PlaceOutcome]:
            if stop.is_set():  # not started before the stop: left for the next pass, as before
                return []
            return _poll_account(settings, store, source, account, regions, stop, reads)

        futures = [pool.submit(one, account, regions) for account, regions in accounts]
        return [outcome for future in futures for outcome in future.result()]


# ── one account ──────────────────────────────────────────────────────────────────────────────────────


def _poll_account(settings: Settings, store: Store, source: Source, account: str, regions: list[str],
                  stop: threading.Event, reads: ThreadPoolExecutor) -> list[PlaceOutcome]:
    outcomes = [PlaceOutcome(AccountRegion(account, region)) for region in regions]
    lease = Lease(store, poll_lease_name(source.name, account), settings.lease_seconds)
    if not lease.acquire():
        for outcome in outcomes:
            outcome.skipped = "another process is polling this account"
        return outcomes
    try:
        _pull_and_detect(settings, store, source, outcomes, lease, stop, reads)
    finally:
        lease.release()
    return outcomes


def _pull_and_detect(settings: Settings, store: Store, source: Source, outcomes: list[PlaceOutcome],
                     lease: Lease, stop: threading.Event, reads: ThreadPoolExecutor) -> None:
    now = utcnow()
    watermarks = poll_state.watermarks(store, source.name, [o.place for o in outcomes])
    history_end = engine_history_end(settings, store)
    for outcome in outcomes:
        watermark = watermarks.get(outcome.place)
        if watermark is None and uses_engine_backfill(settings):
            # The engine's history is the backfill: the first poll starts where its query ended.
            if history_end is None:
                outcome.skipped = f"waiting for the backfill from {settings.backfill_source}"
                continue
            watermark = history_end
        outcome.backfill = watermark is None
        if watermark is None:
            start = now - timedelta(days=settings.backfill_days)
        else:
            start = watermark - timedelta(minutes=settings.lookback_minutes)
        if source.history is not None:
            start = max(start, now - source.history)
        outcome.start, outcome.end = start, now

    def between_requests() -> None:
        if stop.is_set():
            raise Interrupted()
        if not lease.keep_alive():
            raise SourceError("another process took over this account's poll lease")

    def pull(outcome: PlaceOutcome) -> Pulled | None:
        if outcome.skipped:
            return None
        try:
            return source.pull(outcome.place, *outcome.window(), between_requests)
        except Interrupted:
            outcome.skipped = "interrupted: the process is stopping"
        except SourceError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # an unexpected failure of one place must not stop the others
            log.exception("reading %s %s failed", source.name, outcome.place)
            outcome.error = f"{type(exc).__name__}: {exc}"
        return None

    futures = [reads.submit(pull, outcome) for outcome in outcomes]
    # A read may wait in the pool behind other accounts' reads: the lease is kept alive meanwhile too.
    while wait(futures, timeout=lease.ttl.total_seconds() / 3).not_done:
        lease.keep_alive()
    pulled = dict(zip(map(id, outcomes), [future.result() for future in futures]))

    # History first (learned silently), then what is new, each batch in eventTime order.
    for backfill in (True, False):
        batch = [(o, read) for o in outcomes if o.backfill == backfill and (read := pulled[id(o)]) is not None]
        if batch:
            _detect_and_store(settings, store, source, [o for o, _ in batch], [read for _, read in batch], backfill)
    for outcome in outcomes:
        if outcome.error:
            poll_state.record_failure(store, source.name, outcome.place, outcome.error)


def _detect_and_store(settings: Settings, store: Store, source: Source, outcomes: list[PlaceOutcome],
                      pulls: list[Pulled], backfill: bool) -> None:
    account = outcomes[0].place.account_id
    calls = [call for pulled in pulls for call in pulled.calls]
    try:
        if backfill:
            store.set_observed_since(account, min(o.window()[0] for o in outcomes))
        signals, fresh = detect(calls, settings.tuning, store, learn_only=backfill)
        for pulled in pulls:
            source.remember(pulled)
    except Exception as exc:  # the database went away, …: nothing moved, the next pass repeats this one
        log.exception("storing %s %s failed", source.name, account)
        for outcome in outcomes:
            outcome.error = f"storing the events failed: {type(exc).__name__}: {str(exc)[:300]}"
        return
    fresh_calls = set(fresh)
    for outcome, pulled in zip(outcomes, pulls):
        outcome.records, outcome.bad = pulled.records, len(pulled.bad)
        outcome.new_calls = sum(1 for call in pulled.calls if call in fresh_calls)
        outcome.signals = len({s.signal_id for s in signals if outcome.place.region in s.regions})
        for problem in pulled.bad[:20]:
            log.warning("skipped %s", problem)
        poll_state.record_success(store, source.name, outcome.place, watermark=outcome.window()[1], backfill=backfill)


# ── the first start's history from a SQL engine (SPEC §9) ────────────────────────────────────────


def uses_engine_backfill(settings: Settings) -> bool:
    return is_engine_url(settings.backfill_source or "")


def engine_history_end(settings: Settings, store: Store) -> datetime | None:
    """Where the engine's history ended, once it is stored; None before (or without an engine backfill)."""
    if not uses_engine_backfill(settings):
        return None
    with store.session() as session:
        row = session.get(EngineBackfill, settings.backfill_source)
    return row.until if row is not None else None


def engine_backfill(settings: Settings, store: Store, places: list[AccountRegion],
                    stop: threading.Event) -> str | None:
    """SESGUARD_BACKFILL_SOURCE=athena://…|lake://…: on the first start, SESGUARD_BACKFILL_DAYS of every account's
    and region's history in one query, learned silently; once. None when done (or not configured), else why not."""
    url = settings.backfill_source
    if not url or not uses_engine_backfill(settings) or engine_history_end(settings, store) is not None:
        return None
    from detection.sources.sql.backfill import backfill

    lease = Lease(store, f"engine-backfill:{settings.backfill_source}", settings.lease_seconds)
    if not lease.acquire():
        return None  # another process reads it; the places wait (skipped, not failing) until it is stored
    try:
        if engine_history_end(settings, store) is not None:  # finished by another process meanwhile
            return None
        until = utcnow()
        since = until - timedelta(days=settings.backfill_days)
        engine = settings.engine_settings
        engine = dataclasses.replace(engine, limits=dataclasses.replace(engine.limits, stop=stop,
                                                                         keep_alive=lease.keep_alive))
        result = backfill(url, store, settings.tuning, since, until, engine,
                          settings.identity_key, {place.account_id for place in places},
                          settings.athena_table, settings.lake_event_data_store)
        log.log(logging.INFO if result.ok else logging.WARNING, "%s", result.line())
        if not result.ok:
            return result.line()
        assert result.figures is not None  # backfill() keeps the figures of every query it ran
        with store.session() as session:
            session.add(EngineBackfill(source=url, since=since, until=until,
                                       query_id=result.figures.query_id, calls=result.calls,
                                       bytes_scanned=result.figures.bytes_scanned))
            session.commit()
        return None
    finally:
        lease.release()


