"""Request pacing shared by every process of a deployment: at most N requests in any window per key.

Used for CloudTrail's LookupEvents (2 a second per account and region) and for Slack's posting pace (one
message a second per channel). The bookings live in the store's `request_slots` table, so processes that
share the database share the budget.

A booking is a database transaction. Slack's pace books each message. LookupEvents' pace books a *span*
of a key's time instead (`span` seconds): one transaction gives this process the key from the span's first
slot to its end, and the requests inside are paced in memory by the same rule, from the times this process
gave them. A steady poll of a place (two requests, one per event source) is one booking, not two; a long
read one booking per four requests. What goes out keeps exactly the limit: see `RequestPacer`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from detection.store import Store, json_list


class RequestSlots(SQLModel, table=True):
    """When the latest requests of one rate-limited key (e.g. LookupEvents for an account and region)
    were, or are booked to be, sent: every process of a deployment paces its requests through this row."""

    __tablename__ = "request_slots"
    key: str = Field(primary_key=True)
    recent: list = json_list()  # epoch seconds, oldest first


# A booking, made for every place a pass reads, in the driver's own SQL: SQLAlchemy's statement machinery cost
# six times the database's work here (1.4 ms of CPU a booking against 0.2). The key is always a parameter.
_LOCKED_ROW_SQLITE = ("INSERT INTO request_slots (key, recent) VALUES (?, '[]') "
                      "ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING recent")
_LOCKED_ROW_POSTGRES = ("INSERT INTO request_slots (key, recent) VALUES (%s, '[]') "
                        "ON CONFLICT (key) DO UPDATE SET key = excluded.key "
                        "RETURNING recent, extract(epoch FROM clock_timestamp())")  # one clock for every host
_WRITE_ROW_SQLITE = "UPDATE request_slots SET recent = ? WHERE key = ?"
_WRITE_ROW_POSTGRES = "UPDATE request_slots SET recent = %s::json WHERE key = %s"


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

    With a `span`, a booking takes the key from its first slot `s` (as above) to `s + span`, and records
    `limit` requests at `s + span` in the row: the next booking, by any process, starts a full window (and
    the margin) after the span's end. Inside the span, this process books each request in memory by the
    same rule, starting from the row's bookings made before the span, and sends none after the span's end
    (plus the late tolerance), which it books a new span for instead. So every window holds at most `limit`
    requests of the key: within a span by the rule, across spans because they are a full spacing apart.
    A span as long as one spacing keeps the key's throughput (four requests per two spacings, as booking
    each would allow); another process's request waits at most for the end of the span under way.

    What happens after the turn is out of the pacer's sight: a request may wait for its connection or for a
    busy host after its turn came, and reach the server later than the ones booked after it expect. But it
    reached the server no later than its answer came back. So the requests this process sent are also
    counted by their answers (`answered`): a request goes out no earlier than `window` after the answer of
    the one `limit` places before it in this process. A late request then delays the ones after it instead
    of crowding their window.
    """

    # A request this much later than its booked time books again; half the margin stays for the network.
    LATE_SHARE_OF_MARGIN = 0.5
    MAX_BOOKINGS = 5  # then it goes out late rather than never (a host too slow to keep any schedule)

    def __init__(self, store: Store, limit: int, window: float, margin: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] | None = None,
                 span: float | None = None):
        self.store, self.limit, self.window, self.spacing, self.sleep = store, limit, window, window + margin, sleep
        self.tolerance = margin * self.LATE_SHARE_OF_MARGIN
        # A hard limit (one with a margin: LookupEvents) is booked in spans of one spacing unless told
        # otherwise; an approximate pace (Slack's) books each request.
        self.span = (self.spacing if margin else 0.0) if span is None else span
        self.bookings = 0  # database transactions made (the benchmark reports them)
        self._spans: dict[str, _Span] = {}
        self._spans_lock = threading.Lock()
        self._answers: dict[str, deque[float]] = {}  # per key, this process's latest answers (this host's clock)
        self._answers_lock = threading.Lock()
        # A clock of the caller's (epoch seconds) replaces both this host's and the database's: a test
        # moves it with `sleep`, so that what a pace allows is decided by the rule, not by a loaded host.
        self.clock = clock
        self._time = clock or time.time

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
            send_at, offset = self._take(key) if self.span else self._book(key, self._after_answers(key))
            delay = send_at - (self._time() + offset)  # measured after the commit, on the booking's clock
            if delay > 0:
                self.sleep(delay)
            if not self.tolerance or self._time() + offset - send_at <= self.tolerance:
                break
        return self._time() - started

    def _take(self, key: str) -> tuple[float, float]:
        """A slot inside this process's span of the key, booking a new span when there is none left."""
        with self._spans_lock:
            span = self._spans.get(key)
            if span is None:
                span = self._spans[key] = _Span()
        not_before = self._after_answers(key)
        with span.lock:  # one booking at a time per key; other keys go on
            if span.end is not None:
                send_at = self._slot(span, not_before)
                if send_at <= span.end:
                    span.recent = (span.recent + [send_at])[-self.limit:]
                    return send_at, span.offset
            before, span.end, span.offset = self._book_span(key, not_before)
            span.recent = before
            send_at = self._slot(span, not_before)
            span.recent = (span.recent + [send_at])[-self.limit:]
            return send_at, span.offset

    def _slot(self, span: _Span, not_before: float | None) -> float:
        send_at = span.next_slot(self._time() + span.offset, self.limit, self.spacing)
        return send_at if not_before is None else max(send_at, not_before + span.offset)

    def _book_span(self, key: str, not_before: float | None = None) -> tuple[list[float], float, float]:
        """(the key's bookings before the span, the span's end, how far the booking clock is ahead of this
        host's); the span starts no earlier than `not_before` (this host's clock). The row then holds `limit`
        requests at the span's end."""
        with self.store.engine.begin() as connection:
            recent, now = self._locked_row(connection, key)
            offset = now - self._time()
            first = now if len(recent) < self.limit else max(now, recent[-self.limit] + self.spacing)
            if not_before is not None:
                first = max(first, not_before + offset)
            end = first + self.span
            self._write_row(connection, key, [end] * self.limit)
        self.bookings += 1
        return recent, end, offset

    def _book(self, key: str, not_before: float | None = None) -> tuple[float, float]:
        """(the booked send time, how far the booking clock is ahead of this host's); `not_before` is a time
        on this host's clock."""
        with self.store.engine.begin() as connection:
            recent, now = self._locked_row(connection, key)
            offset = now - self._time()
            send_at = now if len(recent) < self.limit else max(now, recent[-self.limit] + self.spacing)
            if not_before is not None:
                send_at = max(send_at, not_before + offset)
            self._write_row(connection, key, (recent + [send_at])[-self.limit:])
        self.bookings += 1
        return send_at, offset

    def _locked_row(self, connection: sa.Connection, key: str) -> tuple[list[float], float]:
        """The key's latest `limit` bookings, oldest first, and the booking clock's time, with the row's
        lock held to the end of the transaction: a no-op upsert takes the row's lock (PostgreSQL) or the
        database's write lock (SQLite) as it reads the row, so that it sees every booking made before ours
        and none can slip in after it."""
        postgres = self.store.is_postgres
        row = connection.exec_driver_sql(_LOCKED_ROW_POSTGRES if postgres else _LOCKED_ROW_SQLITE, (key,)).one()
        recent = orjson.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]  # psycopg reads JSON itself
        moments = sorted(float(moment) for moment in recent if isinstance(moment, (int, float)))
        now = self.clock() if self.clock is not None else float(row[1]) if postgres else time.time()
        return moments[-self.limit:], now

    def _write_row(self, connection: sa.Connection, key: str, recent: list[float]) -> None:
        statement = _WRITE_ROW_POSTGRES if self.store.is_postgres else _WRITE_ROW_SQLITE
        connection.exec_driver_sql(statement, (orjson.dumps(recent).decode(), key))


@dataclass
class _Span:
    """This process's span of one key: until when it may send, and the slots it gave out (booking clock)."""

    end: float | None = None
    offset: float = 0.0
    recent: list[float] = field(default_factory=list)  # the latest `limit` slots, the row's before the span first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_slot(self, now: float, limit: int, spacing: float) -> float:
        return now if len(self.recent) < limit else max(now, self.recent[-limit] + spacing)
