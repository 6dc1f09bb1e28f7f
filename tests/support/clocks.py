"""A clock a test moves: the pacer's waits become steps on it, so that a pace is judged by its rule and not by
how busy the host is, and a test of pacing takes no real time.

`SteppingClock.time` and `.sleep` are handed to the code under test where it takes a clock and a sleep
(`RequestPacer(clock=…, sleep=…)`), and `.time` to the stand-in that keeps the limit
(`FakeCloudTrail(clock=…)`), so both judge on one time line. Time moves only when something sleeps on it:
tests that use it let one thread pace at a time (held requests and events order them), which keeps the
time line the same on every run.
"""

from __future__ import annotations

import threading
import time


class SteppingClock:
    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start  # epoch seconds, as the stores keep them
        self.slept: list[float] = []  # every wait asked for, in order
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(seconds, 0.0)
