"""The outbox: rows that one process at a time works on, and the claim that says which one (SPEC §3, §4).

Every outbox — alerts, pages, investigations, learning reports, digests, suppression reminders — works the
same way, written once here:

- A process claims a row (`Outbox.claim`) before it works on it: one conditional `UPDATE` of the row's claim
  columns, which only one process can win on SQLite and PostgreSQL alike, while the row is still pending and
  nobody else holds it. Each claim counts an attempt, so the next holder knows an earlier one may have posted.
- A claim lasts a while (`length`) and is renewed while the work is under way (`Outbox.renew`, or a
  `Renewal` thread every third of the length), so that a process killed mid-post stops renewing it and its
  row is taken over that soon after, not minutes later.
- The holder gives the claim back with what it achieved (`Outbox.release`); a holder whose claim lapsed and
  was taken over changes nothing.
- A holder that took over a lapsed claim looks for the post that may have gone out before posting again;
  that look-up is `bot.slack.history.find_by_metadata`.

Times are this host's clock (UTC): hosts must keep NTP time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Self, TypeVar

import sqlalchemy as sa
from sqlmodel import SQLModel

from detection.store import Store, utcnow

log = logging.getLogger(__name__)

# How long a claim lasts when the outbox has no setting of its own (the triage desk's outboxes).
CLAIM = timedelta(minutes=2)

Row = TypeVar("Row", bound=SQLModel)


def holder_name() -> str:
    """Who holds a claim or a lease: unique per holder, and readable in the table: host, process, random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _no_condition(now: datetime) -> list[Any]:
    return []


@dataclass(frozen=True)
class Outbox(Generic[Row]):
    """One outbox table: its rows, their key, the claim columns, and which rows still wait to be worked on.

    `pending(now)` gives the conditions under which a row still needs work (unposted, due, …): a row that no
    longer meets them cannot be claimed, whatever another process did since it was read. `attempt` is what a
    claim adds to the attempts column (an SQL expression when only some claims count).
    """

    model: type[Row]
    key: Any  # the key column
    claimed_by: Any
    claimed_until: Any
    attempts: Any
    pending: Callable[[datetime], list[Any]] = _no_condition
    attempt: Any = 1

    def free(self, now: datetime) -> Any:
        """Nobody holds the row now: never claimed, given back, or its holder stopped renewing."""
        return sa.or_(self.claimed_until.is_(None), self.claimed_until < now)

    def claim(self, store: Store, key: Any, holder: str, now: datetime, length: timedelta = CLAIM) -> Row | None:
        """The row, claimed by `holder` until `now + length` (its attempts counted), while it is pending and
        nobody else holds it; None when another process holds it or it needs nothing any more."""
        with store.session() as session:
            won = session.exec(
                sa.update(self.model).where(self.key == key, *self.pending(now), self.free(now))
                .values({self.claimed_by: holder, self.claimed_until: now + length,
                         self.attempts: self.attempts + self.attempt})
            ).rowcount
            session.commit()
            return session.get(self.model, key, populate_existing=True) if won == 1 else None

    def renew(self, store: Store, holder: str, now: datetime, length: timedelta = CLAIM, key: Any = None) -> int:
        """Extend `holder`'s claims (on the row `key` only, when given) to `now + length`; how many it still
        holds (0: its claim lapsed and another process took the row over)."""
        with store.session() as session:
            kept = session.exec(
                sa.update(self.model).where(*self._held(holder, key)).values({self.claimed_until: now + length})
            ).rowcount
            session.commit()
        return kept

    def update(self, store: Store, key: Any, holder: str, values: dict[str, Any],
               rows: Iterable[SQLModel] = (), held: Iterable[sa.Executable] = ()) -> bool:
        """Store `values` on the row while `holder` holds it, and `rows` (such as a history line: what this
        holder did, whoever holds the row now) in the same transaction; False when another process holds
        the row now, and `values` were not stored. `held`: statements on other tables that only the holder
        may run (the signal a pending alert turned out to be suppressed), run in that transaction too."""
        with store.session() as session:
            kept = session.exec(sa.update(self.model).where(*self._held(holder, key)).values(values)).rowcount
            if kept:
                for statement in held:
                    session.execute(statement)
            session.add_all(list(rows))
            session.commit()
        return bool(kept)

    def release(self, store: Store, key: Any, holder: str, rows: Iterable[SQLModel] = (),
                held: Iterable[sa.Executable] = (), **values: Any) -> bool:
        """Give `holder`'s claim back, storing what the attempt achieved (`values`) and `rows` with it (and
        running `held`, see `update`); a claim that lapsed and was taken over is left to its new holder (False)."""
        return self.update(store, key, holder, {self.claimed_by.key: None, self.claimed_until.key: None, **values},
                           rows, held)

    def renewal(self, store: Store, holder: str, length: timedelta) -> Renewal:
        """Renews every claim `holder` has on this outbox while the `with` block runs."""
        return Renewal(lambda: self.renew(store, holder, utcnow(), length), length,
                       f"the claim of {holder} on {self.model.__name__} rows", thread_name="outbox-claim")

    def _held(self, holder: str, key: Any) -> list[Any]:
        return [self.claimed_by == holder, *([] if key is None else [self.key == key])]


@dataclass
class Renewal:
    """Calls `renew` every third of `length` while the `with` block runs: a live process keeps what it
    holds however long its work waits (on Slack, on LookupEvents), a dead one lets go after one length.

    A failed renewal is logged and tried again a third later: the database (or the queue) may come back
    before what was held lapses.
    """

    renew: Callable[[], object]
    length: timedelta
    what: str  # for the log: what is being renewed
    errors: tuple[type[Exception], ...] = (Exception,)
    describe: Callable[[Exception], str] = lambda exc: f"{type(exc).__name__}: {exc}"[:300]
    thread_name: str = "renewal"
    _done: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._renew_until_done, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _renew_until_done(self) -> None:
        while not self._done.wait(self.length.total_seconds() / 3):
            try:
                self.renew()
            except self.errors as exc:
                log.warning("cannot renew %s: %s", self.what, self.describe(exc))


def take_turn(store: Store, key_column: Any, key: Any, turn_column: Any, now: datetime, every: timedelta) -> bool:
    """The right to act on the row now, at most once `every` (by any process): one conditional UPDATE of
    `turn_column`, the moment of the last turn, which only one process wins."""
    with store.session() as session:
        taken = session.exec(
            sa.update(key_column.class_).where(key_column == key, sa.or_(turn_column.is_(None),
                                                                          turn_column <= now - every))
            .values({turn_column: now})
        ).rowcount
        session.commit()
    return bool(taken)
