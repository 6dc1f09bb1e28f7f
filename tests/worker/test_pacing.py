"""The shared request pacer: what goes out keeps the pace, also when booking a slot is slow."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from detection.pacing import RequestPacer
from tests.support.clocks import SteppingClock

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


def test_a_request_that_reached_the_server_late_spaces_the_ones_after_it_by_its_answer(sqlite_store):
    """The first request waits 0.6 s for its connection after its turn (invisible to the booking): it reaches
    the server up to its answer, at 0.6 s. The third request, booked 1.2 s after the first, would then be
    the third within one second at the server; counted from the answers, it waits until 1.6 s."""
    clock = SteppingClock(start=1_000.0)
    pacer = RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2, clock=clock.time, sleep=clock.sleep)
    sends = []
    for network in (0.6, 0.0, 0.0):
        pacer.wait_turn(KEY)
        sends.append(clock.time() - 1_000.0)
        clock.sleep(network)
        pacer.answered(KEY)
    assert sends == pytest.approx([0.0, 0.6, 1.6])
