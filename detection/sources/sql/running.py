"""What the two engines' protocols share: the limits a query runs within, the wait between two looks at it,
and the one-line failure.

A query is bounded three ways: in time (the query's own bounds, `query`), in bytes scanned
(`SESGUARD_SQL_MAX_GB`: checked on every look while it runs, and once more when it is done; past it the query
is stopped and the run fails) and in waiting (`deadline_seconds`: past it the query is stopped too). Waiting
happens on an Event, so that a process told to stop stops at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

GB = 1024 ** 3
DEFAULT_MAX_GB = 50.0


class QueryFailed(RuntimeError):
    """A query that failed, was cancelled, timed out or went past a limit: one line that says which."""


@dataclass(frozen=True)
class Limits:
    max_gb: float = DEFAULT_MAX_GB
    deadline_seconds: float = 3600.0  # an hour: Athena's own default query time-out is 30 minutes
    first_wait: float = 0.5  # seconds between the first looks at a running query, doubling up to `longest_wait`
    longest_wait: float = 5.0
    page_size: int = 1000  # rows a results page (both engines' maximum)
    stop: threading.Event = field(default_factory=threading.Event, compare=False)
    # Called before each wait (the worker renews its lease there); False stops the query.
    keep_alive: Callable[[], bool] | None = field(default=None, compare=False)

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * GB)

    def over(self, scanned: int) -> bool:
        return scanned > self.max_bytes

    def too_much(self, engine: str, query_id: str, scanned: int) -> QueryFailed:
        return QueryFailed(f"{engine} query {query_id} stopped: it scanned {scanned / GB:.2f} GB, more than "
                           f"SESGUARD_SQL_MAX_GB={self.max_gb:g}")


class Waits:
    """The waits between looks at one query, within its deadline."""

    def __init__(self, limits: Limits, clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self.deadline = clock() + limits.deadline_seconds
        self.next = limits.first_wait

    def expired(self) -> bool:
        return self.clock() >= self.deadline

    def wait(self) -> str | None:
        """Wait before the next look; why the query must stop instead, if it must."""
        if self.limits.keep_alive is not None and not self.limits.keep_alive():
            return "another process took over its lease"
        pause = min(self.next, max(0.0, self.deadline - self.clock()))
        self.next = min(self.next * 2, self.limits.longest_wait)
        return "the process is stopping" if self.limits.stop.wait(pause) else None
