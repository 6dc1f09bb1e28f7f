"""Waiting in tests: on a condition, with a deadline, never on a guessed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

# A bound on waiting for something that takes a second or two: it only stops a broken test from hanging.
PATIENCE_SECONDS = 60


def wait_for(condition: Callable[[], object], what: str, processes: Iterable = (),
             patience: float = PATIENCE_SECONDS) -> None:
    """Until `condition()` holds; fails when one of `processes` (anything with `poll()`, as Popen has) exits
    first, or after `patience` seconds."""
    deadline = time.monotonic() + patience
    while not condition():
        for process in processes:
            assert process.poll() is None, f"a process exited ({process.poll()}) while waiting for {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
