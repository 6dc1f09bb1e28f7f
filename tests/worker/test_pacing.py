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


@pytest.mark.parametrize("span", [0.0, None], ids=["each request booked", "in spans"])
def test_a_request_that_reached_the_server_late_spaces_the_ones_after_it_by_its_answer(sqlite_store, span):
    """The first request waits 0.6 s for its connection after its turn (invisible to the booking): it reaches
    the server up to its answer, at 0.6 s. The third request, due 1.2 s after the first, would then be the
    third within one second at the server; counted from the answers, it waits until 1.6 s at least (in spans,
    past the span's end: the next span, a spacing after it)."""
    clock = SteppingClock(start=1_000.0)
    pacer = RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2, clock=clock.time, sleep=clock.sleep,
                         span=span)
    sends = []
    for network in (0.6, 0.0, 0.0):
        pacer.wait_turn(KEY)
        sends.append(clock.time() - 1_000.0)
        clock.sleep(network)
        pacer.answered(KEY)
    assert sends == pytest.approx([0.0, 0.6, 1.6] if span == 0.0 else [0.0, 0.6, 2.4])


def most_in_one_window(times: list[float], window: float = 1.0) -> int:
    """The most requests in any `window` seconds (each window starting at a request)."""
    ordered = sorted(times)
    return max(sum(1 for moment in ordered if start <= moment < start + window) for start in ordered)


def test_a_span_books_four_requests_in_one_transaction_at_the_pace_booking_each_would_keep(sqlite_store):
    """LookupEvents' pace (a margin: a hard limit) books spans of one spacing: two requests at the span's start
    and two a spacing later, then the next span a spacing after its end. The times are exactly those booking
    each request would give; the transactions a quarter."""
    clock = SteppingClock()
    pacer = RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2, sleep=clock.sleep, clock=clock.time)
    started = clock.time()
    times = []
    for _ in range(8):
        pacer.wait_turn(KEY)
        times.append(clock.time() - started)
    assert times == pytest.approx([0, 0, 1.2, 1.2, 2.4, 2.4, 3.6, 3.6])
    assert pacer.bookings == 2
    assert most_in_one_window(times) == 2


def test_two_processes_with_spans_share_a_key_within_its_limit(sqlite_store):
    """Two pacers on one store (two processes), taking turns on one key: the second's span starts a full
    spacing after the first's end, and no window of a second ever holds a third request."""
    clock = SteppingClock()
    pacers = [RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2, sleep=clock.sleep, clock=clock.time)
              for _ in range(2)]
    started = clock.time()
    sent = []
    for turn in range(12):
        pacers[turn % 3 == 0].wait_turn(KEY)
        sent.append(clock.time() - started)
    assert most_in_one_window(sent) == 2
    assert sum(pacer.bookings for pacer in pacers) < len(sent)


def test_a_request_that_wakes_after_its_span_books_again(sqlite_store):
    """A thread that wakes a whole second after its slot (a loaded host) is past its span's end: it books a
    new span rather than going out next to requests another process booked after that end."""
    clock = SteppingClock()
    pacer = RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2, sleep=clock.sleep, clock=clock.time)
    other = RequestPacer(sqlite_store, limit=2, window=1.0, margin=0.2, sleep=clock.sleep, clock=clock.time)
    started = clock.time()
    pacer.wait_turn(KEY)
    other.wait_turn(KEY)  # books the next span: two at 2.4
    assert clock.time() - started == pytest.approx(2.4)
    pacer.wait_turn(KEY)  # its span ended at 1.2: a new one, after the other's
    assert clock.time() - started == pytest.approx(4.8)
    assert pacer.bookings == 2
