"""Request pacing shared by every process of a deployment: at most N requests in any window per key.

Used for CloudTrail's LookupEvents (2 a second per account and region) and for Slack's posting pace (one
message a second per channel). The bookings live in the store's `request_slots` table, so processes that
share the database share the budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from detection.store import Store, json_list, table_of


class RequestSlots(SQLModel, table=True):
    """When the latest requests of one rate-limited key (e.g. LookupEvents for an account and region)
    were, or are booked to be, sent: every process of a deployment paces its requests through this row."""

    __tablename__ = "request_slots"
    key: str = Field(primary_key=True)
    recent: list = json_list()  # epoch seconds, oldest first


class RequestPacer:
    """At most `limit` requests in any `window` seconds per key, across every process sharing the store.

    A request books its send time in the key's row while holding the row's write lock: no earlier than
    `window` (plus a margin) after the request `limit` places before it. It then sleeps until that time.
    Times are the database server's clock on PostgreSQL (one clock for all hosts), this host's on SQLite.

    The margin absorbs how late a request goes out after its booked time. A request may go out much later
    than that: the booking's commit was slow (a busy disk, a lock wait) or the thread woke late on a loaded
    host; the requests booked after it were spaced from its booked time, so going out then could put
    `limit + 1` requests in one window. Such a request books a new slot instead (the one it missed stays
    booked, which only spaces the others more). Without a margin (a pace that is approximate anyway, such
    as Slack's "about one message a second"), lateness is let be.
    """

    # A request this much later than its booked time books again; half the margin stays for the network.
    LATE_SHARE_OF_MARGIN = 0.5
    MAX_BOOKINGS = 5  # then it goes out late rather than never (a host too slow to keep any schedule)

    def __init__(self, store: Store, limit: int, window: float, margin: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] | None = None):
        self.store, self.limit, self.window, self.spacing, self.sleep = store, limit, window, window + margin, sleep
        self.tolerance = margin * self.LATE_SHARE_OF_MARGIN
        # A clock of the caller's (epoch seconds) replaces both this host's and the database's: a test
        # moves it with `sleep`, so that what a pace allows is decided by the rule, not by a loaded host.
        self.clock = clock
        self._time = clock or time.time
        self._answers: dict[str, deque[float]] = {}  # per key, this process's latest answers (this host's clock)
        self._answers_lock = threading.Lock()

    def answered(self, key: str) -> None:
        """A request of `key` got its answer (or its connection failed): it reached the server by now."""
        with self._answers_lock:
            self._answers.setdefault(key, deque(maxlen=self.limit)).append(self._time())

    def _after_answers(self, key: str) -> float | None:
        """The earliest this host may send the next request of `key` by the answers: `window` after the
        answer `limit` places back (None while fewer than `limit` requests were answered)."""
        with self._answers_lock:
            answers = self._answers.get(key)
            return answers[0] + self.window if answers and len(answers) == self.limit else None

    def wait_turn(self, key: str) -> float:
        """Block until this request may be sent; returns the seconds waited."""
        started = self._time()
        for _ in range(self.MAX_BOOKINGS):
            send_at, offset = self._book(key, self._after_answers(key))
            delay = send_at - (self._time() + offset)  # measured after the commit, on the booking's clock
            if delay > 0:
                self.sleep(delay)
            if not self.tolerance or self._time() + offset - send_at <= self.tolerance:
                break
        return self._time() - started

    def _book(self, key: str, not_before: float | None = None) -> tuple[float, float]:
        """(the booked send time, how far the booking clock is ahead of this host's); `not_before` is a time
        on this host's clock."""
        table = table_of(RequestSlots)
        with self.store.session() as session:
            self.store.insert_ignoring_duplicates(session, RequestSlots, [{"key": key, "recent": []}])
            # A no-op write takes the row's lock (PostgreSQL) or the database's write lock (SQLite) first,
            # so that the read below sees every booking made before ours and none can slip in after it.
            session.execute(sa.update(table).where(table.c.key == key).values(key=key))
            recent = session.execute(sa.select(table.c.recent).where(table.c.key == key)).scalar_one()
            now = self._clock(session)
            offset = now - self._time()
            recent = sorted(float(moment) for moment in recent if isinstance(moment, (int, float)))[-self.limit:]
            send_at = now if len(recent) < self.limit else max(now, recent[-self.limit] + self.spacing)
            if not_before is not None:
                send_at = max(send_at, not_before + offset)
            kept = (recent + [send_at])[-self.limit:]
            session.execute(sa.update(table).where(table.c.key == key).values(recent=kept))
            session.commit()
        return send_at, offset

    def _clock(self, session) -> float:
        if self.clock is not None:
            return self.clock()
        if self.store.is_postgres:
            return float(session.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()
