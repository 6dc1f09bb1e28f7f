"""`poll_state`: each source's places and their health (SPEC §3), written once for the poll, the queue's
consumer and the backfill.

A row per source, account and region: the watermark, last success, last error, consecutive failures and since
when a first success is awaited; a row `*`/`*` for the source as a whole (its listing of places, or a queue's
receive). `bot.health.report` reads them for `/healthz` and `/sesguard status`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import Counter
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.worker.tables import SOURCE_ROW, PollState
from detection.sources.pulled import AccountRegion
from detection.store import Store, table_of, utcnow

# poll_state's row for the source as a whole: its listing, and failures such as credentials that name no account.
WHOLE_SOURCE = AccountRegion(*SOURCE_ROW)

# Every failure this process recorded (a place's read, a source's listing), by source (its name in the settings:
# `lookup`, `s3://…`, `sqs`; never an account or region, which may come from a record). The store keeps only
# the consecutive failures, which a success resets: the counter is what `increase()` can alert on (SPEC §11).
POLL_FAILURES = Counter("sesguard_poll_failures", "Failed reads of a place or listings of a source, by this process",
                        ["source"])


def _key(source: str, place: AccountRegion) -> dict:
    return {"source": source, "account_id": place.account_id, "region": place.region}


def _keys(places: list[AccountRegion]) -> list[tuple[str, str]]:
    """The places' (account, region) keys, each once, in key order (the order every process locks rows in)."""
    return [(place.account_id, place.region) for place in sorted(set(places))]


def _rows_of(source: str, places: list[AccountRegion]) -> SelectOfScalar[PollState]:
    """The rows of these places, in one query, in key order (the order every process locks them in)."""
    return (select(PollState).where(PollState.source == source,
                                    sa.tuple_(col(PollState.account_id), col(PollState.region)).in_(_keys(places)))
            .order_by(col(PollState.account_id), col(PollState.region)))


def watermarks(store: Store, source: str, places: list[AccountRegion]) -> dict[AccountRegion, datetime]:
    if not places:
        return {}
    table = table_of(PollState)
    query = sa.select(table.c.account_id, table.c.region, table.c.watermark).where(
        table.c.source == source, sa.tuple_(table.c.account_id, table.c.region).in_(_keys(places)),
        table.c.watermark.is_not(None))
    with store.engine.connect() as connection:
        return {AccountRegion(account, region): watermark for account, region, watermark in connection.execute(query)}


def _new_state(source: str, place: AccountRegion, now: datetime) -> dict:
    return {**_key(source, place), "consecutive_failures": 0, "waiting_since": now}


def _update_state(store: Store, source: str, place: AccountRegion, change: Callable[[PollState], None]) -> None:
    _update_states(store, source, [place], change)


def _update_states(store: Store, source: str, places: list[AccountRegion], change: Callable[[PollState], None]) -> None:
    with store.session() as session:
        now = utcnow()
        store.insert_ignoring_duplicates(session, PollState, [_new_state(source, place, now) for place in places])
        query = _rows_of(source, places)
        rows = session.exec(query.with_for_update() if store.is_postgres else query).all()
        if len(rows) != len(set(places)):  # inserted just above, and sesguard deletes none
            raise LookupError(f"poll_state of {source} lacks some of {sorted(places)[:5]}")
        for row in rows:
            change(row)
            session.add(row)
        session.commit()


def record_success(store: Store, source: str, place: AccountRegion, watermark: datetime, backfill: bool) -> None:
    record_successes(store, source, {place: watermark}, backfill)


def record_successes(store: Store, source: str, watermarks: dict[AccountRegion, datetime], backfill: bool) -> None:
    """Several places read and stored (an account's regions): an upsert per place, in key order (the order every
    process locks rows in), in one transaction. Written in SQLAlchemy Core: an account's pass is few rows, and
    the ORM's loading and flushing of them cost more than the statements' own work (2.1 ms of CPU, 0.9 now)."""
    now = utcnow()
    table = table_of(PollState)
    insert = store.insert(PollState)
    stored = insert.on_conflict_do_update(
        index_elements=[table.c.source, table.c.account_id, table.c.region],
        set_={"watermark": sa.case((sa.or_(table.c.watermark.is_(None), table.c.watermark < insert.excluded.watermark),
                                    insert.excluded.watermark), else_=table.c.watermark),
              "backfilled_at": sa.func.coalesce(table.c.backfilled_at, insert.excluded.backfilled_at),
              "last_success_at": insert.excluded.last_success_at, "consecutive_failures": 0})
    rows = [{**_new_state(source, place, now), "watermark": watermark, "backfilled_at": now if backfill else None,
             "last_success_at": now} for place, watermark in sorted(watermarks.items())]
    if rows:
        with store.engine.begin() as connection:
            connection.execute(stored, rows)


def record_failure(store: Store, source: str, place: AccountRegion, error: str) -> None:
    now = utcnow()
    POLL_FAILURES.labels(source=source).inc()

    def change(row: PollState) -> None:
        row.last_error = error[:1000]
        row.last_error_at = now
        row.consecutive_failures = (row.consecutive_failures or 0) + 1

    _update_state(store, source, place, change)


def record_listing(store: Store, source: str, places: list[AccountRegion], listed: bool = True) -> None:
    """The source listed its places: each listed place is awaited from now on if it is new; a place no longer
    listed is retired, one listed again is not; and, when the whole listing worked (`listed`), that is the
    source's own success (row `*`/`*`). A listing that failed part-way lists what it could, and is no success."""
    now = utcnow()
    keys = {(place.account_id, place.region) for place in places}
    table = table_of(PollState)
    with store.session() as session:
        # only the keys and whether retired: every pass lists every place, and loading whole rows was most of it
        was_retired = {(account, region): retired_at is not None for account, region, retired_at in session.exec(
            select(PollState.account_id, PollState.region, PollState.retired_at).where(PollState.source == source))}
        new = [place for place in places if (place.account_id, place.region) not in was_retired]
        store.insert_ignoring_duplicates(session, PollState, [_new_state(source, place, now) for place in new])
        for (account, region), retired_before in sorted(was_retired.items()):
            retired = (account, region) not in keys and (account, region) != SOURCE_ROW
            if retired != retired_before:  # rare: a region or role taken out of the settings, or back in
                session.exec(sa.update(table).where(table.c.source == source, table.c.account_id == account,
                                                    table.c.region == region)
                             .values(retired_at=now if retired else None))
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
