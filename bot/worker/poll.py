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
  no longer lists are retired. `bot.worker.health` reads it for `/healthz` and `/sesguard status`.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlmodel import select

from bot.logs import configure_logging
from bot.printable import printable
from bot.settings import Settings, load_settings
from bot.worker.lease import Lease, poll_lease_name
from bot.worker.process import start, stop_on_signals
from bot.worker.tables import SOURCE_ROW, EngineBackfill, PollState
from detection.scan import detect
from detection.sources.pulled import (
    AccountRegion,
    Interrupted,
    Pulled,
    Source,
    SourceError,
)
from detection.sources.sql.engine import is_engine_url
from detection.store import Store, get_stored, utcnow

log = logging.getLogger(__name__)

# poll_state's row for the source as a whole: its listing, and failures such as credentials that name no account.
WHOLE_SOURCE = AccountRegion(*SOURCE_ROW)


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
    notified: Any = None  # bot.worker.notifier.NotifyResult
    notify_error: str | None = None
    paged: Any = None  # bot.worker.pager.PageResult
    page_error: str | None = None

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
        return lines


def make_source(settings: Settings, store: Store) -> Source | None:
    """The source the poll reads; with SESGUARD_SOURCE=sqs, the backfill source (None without one): the
    queue itself is consumed continuously (`bot.worker.consume`)."""
    if settings.source == "sqs":
        from bot.worker.backfill import backfill_source

        return backfill_source(settings, store)
    if settings.source == "lookup":
        return lookup_source(settings, store)
    return s3_source(settings, store, settings.source)


def lookup_source(settings: Settings, store: Store) -> Source:
    from detection.sources.lookup import Backoff, LookupSource

    return LookupSource(settings.aws_regions, settings.role_arns, store, settings.identity_key,
                        backoff=Backoff(base=settings.retry_seconds),
                        org_role_name=settings.org_role_name, exclude=settings.accounts_exclude)


def s3_source(settings: Settings, store: Store, url: str) -> Source:
    from detection.sources.s3_trail import S3TrailSource

    return S3TrailSource(url, store, settings.identity_key)


def poll_once(settings: Settings, store: Store, source: Source | None = None, *,
              stop: threading.Event | None = None, notify: bool = True, only_new_places: bool = False) -> PollResult:
    """Pull every account and region, detect and store; then, with `notify`, one notifier pass and, with
    PAGERDUTY_ROUTING_KEY, one pager pass. With `only_new_places`, only the places never polled (their
    backfill: `bot.worker.backfill`)."""
    source = source or make_source(settings, store)
    if source is None:
        raise ValueError("SESGUARD_SOURCE=sqs without SESGUARD_BACKFILL_SOURCE: the queue is consumed, nothing polled")
    stop = stop or threading.Event()
    result = PollResult(source.name)
    try:
        places = sorted(source.places())
    except SourceError as exc:
        result.source_error = str(exc)
        _record_failure(store, source.name, WHOLE_SOURCE, str(exc))
        places = []
    else:
        # A source may list what it could while part of its listing failed (an organisation's ListAccounts):
        # the places are read, and the failure is the whole source's.
        listing_error = getattr(source, "listing_error", None)
        _record_listing(store, source.name, places, listed=listing_error is None)
        if listing_error:
            result.source_error = listing_error
            _record_failure(store, source.name, WHOLE_SOURCE, listing_error)
        if only_new_places:
            done = _watermarks(store, source.name, places)
            places = [place for place in places if place not in done]
    if places and not stop.is_set():
        engine_error = engine_backfill(settings, store, places, stop)
        if engine_error:
            result.source_error = engine_error
            _record_failure(store, source.name, WHOLE_SOURCE, engine_error)
    result.places += _poll_accounts(settings, store, source, places, stop)
    for outcome in result.places:
        log.log(logging.WARNING if outcome.error else logging.INFO, "%s", outcome.line(source.name))
    if notify and not stop.is_set():
        result.notified, result.notify_error = notify_pending(store, settings, stop)
    if notify and not stop.is_set() and settings.pagerduty_routing_key is not None:
        result.paged, result.page_error = page_pending_pass(store, settings)
    return result


def notify_pending(store: Store, settings: Settings, stop: threading.Event | None = None) -> tuple[Any, str | None]:
    """The one place the poll hands over to Slack: post the outbox, until `stop` is set. (result, error)"""
    from bot.worker.notifier import post_pending

    try:
        notified = post_pending(store, settings, stop=stop)
    except Exception as exc:  # a notifier bug must not stop the polling; it is reported and exits 1
        log.exception("the notifier pass failed")
        return None, f"{type(exc).__name__}: {exc}"
    log.log(logging.INFO if notified.ok else logging.WARNING, "%s", notified.line())
    return notified, None


def page_pending_pass(store: Store, settings: Settings) -> tuple[Any, str | None]:
    """One pager pass, reported like the notifier's. (result, error)"""
    from bot.worker.pager import page_pending

    try:
        paged = page_pending(store, settings)
    except Exception as exc:  # a pager bug or a lost database must not stop the polling; it is reported
        log.exception("the pager pass failed")
        return None, f"{type(exc).__name__}: {exc}"
    log.log(logging.INFO if paged.ok else logging.WARNING, "%s", paged.line())
    return paged, None


# ── the command ──────────────────────────────────────────────────────────────────────────────────────


def command(once: bool) -> int:
    """`sesguard poll [--once]`: one pass (exit 0 when it completed, 1 when a source or Slack failed),
    or passes every SESGUARD_POLL_SECONDS in the foreground until stopped."""
    settings = load_settings()
    store = start(settings)
    configure_logging(logging.WARNING if once else logging.INFO)
    source = make_source(settings, store)
    stop = threading.Event()
    stop_on_signals(stop)
    if settings.source == "sqs":
        from bot.worker.consume import queue_command

        return queue_command(settings, store, source, once, stop)
    while True:
        result = poll_once(settings, store, source, stop=stop)
        if once:
            for line in result.lines():  # errors may quote S3 keys and AWS's answers
                print(printable(line), file=sys.stderr)
            return 0 if result.ok else 1
        if stop.wait(settings.poll_seconds):
            return 0


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
    watermarks = _watermarks(store, source.name, [o.place for o in outcomes])
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
            _record_failure(store, source.name, outcome.place, outcome.error)


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
        _record_success(store, source.name, outcome.place, watermark=outcome.window()[1], backfill=backfill)


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


# ── poll_state ───────────────────────────────────────────────────────────────────────────────────────


def _key(source: str, place: AccountRegion) -> dict:
    return {"source": source, "account_id": place.account_id, "region": place.region}


def _watermarks(store: Store, source: str, places: list[AccountRegion]) -> dict[AccountRegion, datetime]:
    with store.session() as session:
        rows = [session.get(PollState, (source, p.account_id, p.region)) for p in places]
    return {place: row.watermark for place, row in zip(places, rows) if row is not None and row.watermark is not None}


def _new_state(source: str, place: AccountRegion, now: datetime) -> dict:
    return {**_key(source, place), "consecutive_failures": 0, "waiting_since": now}


def _update_state(store: Store, source: str, place: AccountRegion, change: Callable[[PollState], None]) -> None:
    with store.session() as session:
        store.insert_ignoring_duplicates(session, PollState, [_new_state(source, place, utcnow())])
        key = (source, place.account_id, place.region)
        row = get_stored(session, PollState, key, with_for_update=store.is_postgres)
        change(row)
        session.add(row)
        session.commit()


def _record_success(store: Store, source: str, place: AccountRegion, watermark: datetime, backfill: bool) -> None:
    now = utcnow()

    def change(row: PollState) -> None:
        row.watermark = max(row.watermark, watermark) if row.watermark else watermark
        row.backfilled_at = row.backfilled_at or (now if backfill else None)
        row.last_success_at = now
        row.consecutive_failures = 0

    _update_state(store, source, place, change)


def _record_failure(store: Store, source: str, place: AccountRegion, error: str) -> None:
    now = utcnow()

    def change(row: PollState) -> None:
        row.last_error = error[:1000]
        row.last_error_at = now
        row.consecutive_failures = (row.consecutive_failures or 0) + 1

    _update_state(store, source, place, change)


def _record_listing(store: Store, source: str, places: list[AccountRegion], listed: bool = True) -> None:
    """The source listed its places: each listed place is awaited from now on if it is new; a place no longer
    listed is retired, one listed again is not; and, when the whole listing worked (`listed`), that is the
    source's own success (row `*`/`*`). A listing that failed part-way lists what it could, and is no success."""
    now = utcnow()
    keys = {(place.account_id, place.region) for place in places}
    with store.session() as session:
        rows = {(row.account_id, row.region): row
                for row in session.exec(select(PollState).where(PollState.source == source))}
        new = [place for place in places if (place.account_id, place.region) not in rows]
        store.insert_ignoring_duplicates(session, PollState, [_new_state(source, place, now) for place in new])
        for key, row in rows.items():
            retired = key not in keys and key != SOURCE_ROW
            if retired != (row.retired_at is not None):
                row.retired_at = now if retired else None
                session.add(row)
        session.commit()
    if listed:
        record_source_success(store, source)


def record_source_success(store: Store, source: str) -> None:
    """The source as a whole worked (its listing, or a queue's receive): row `*`/`*` healthy from now."""
    now = utcnow()

    def change(row: PollState) -> None:
        row.last_success_at = now
        row.consecutive_failures = 0

    _update_state(store, source, WHOLE_SOURCE, change)
