"""The shared request pacer: what goes out keeps the pace, also when booking a slot is slow."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from detection.pacing import RequestPacer

KEY = "cloudtrail:111111111111:us-east-1"


def sent_at(pacer: RequestPacer, count: int) -> list[float]:
    """When each of `count` requests in a row would go out (right after its turn came)."""
    times = []
    for _ in range(count):
        pacer.wait_turn(KEY)
        times.append(time.time())
    return times


def test_requests_keep_the_pace_when_one_booking_commits_slowly(sqlite_store):
    """The first booking's commit takes 0.3 s (a busy disk, a lock wait): that request goes out 0.3 s
    after the time it booked. Sent then, it would be the first of three requests within one second."""
    slow_once = threading.Event()

    def slow_commit(connection) -> None:
        if not slow_once.is_set():
            slow_once.set()
            time.sleep(0.3)

    sa.event.listen(sqlite_store.engine, "commit", slow_commit)
    times = sent_at(RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2), 4)
    spans = [later - earlier for earlier, later in zip(times, times[2:])]
    assert min(spans) >= 1.0, spans


def test_requests_keep_the_pace_when_booking_is_quick(sqlite_store):
    times = sent_at(RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2), 5)
    spans = [later - earlier for earlier, later in zip(times, times[2:])]
    assert min(spans) >= 1.0, spans  # (no upper bound: on a loaded host a late request books a later slot)
