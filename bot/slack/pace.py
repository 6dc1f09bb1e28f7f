"""Slack's posting pace: about one message a second per channel (short bursts aside), thread replies
included. Booked in the store, so that every poster shares it: the notifier's alerts, the poll's and the
outbox job's passes, other processes, and the investigations' summaries in the alerts' threads."""

from __future__ import annotations

from collections.abc import Callable

from detection.pacing import RequestPacer
from detection.store import Store

POST_INTERVAL_SECONDS = 1.0


def channel_pacer(store: Store, channel: str, interval: float = POST_INTERVAL_SECONDS) -> Callable[[], None]:
    """Waits for this channel's next posting slot: one post per `interval`."""
    if interval <= 0:  # no pace to keep (tests, drills): nothing to book
        return lambda: None
    pacer = RequestPacer(store, limit=1, window=interval)
    key = f"slack:chat.postMessage:{channel}"

    def wait_turn() -> None:
        pacer.wait_turn(key)

    return wait_turn
