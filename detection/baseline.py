"""New-value detection per AWS account: learn, forget, group into signals (SPEC §1).

The state is plain dictionaries so that the same code runs in memory (`scan`), and against the store
(the worker and `scan --db` load the part of the state a batch touches, run, and save it back).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from detection.record import Call, Sighting
from detection.signals import EXERCISE_USER_AGENTS, Signal

# The longest any duration of the tuning may be: detection adds them to eventTimes, and a hundred years
# keeps every date inside what datetime can hold while still meaning "never" to an operator.
LONGEST = timedelta(days=36_500)


@dataclass(frozen=True)
class Tuning:
    learning: timedelta = timedelta(days=7)
    forget: timedelta = timedelta(days=28)
    group: timedelta = timedelta(minutes=60)
    # a call whose user agent starts with one of these adds the reason "red-team exercise tool"
    exercise_user_agents: tuple[str, ...] = EXERCISE_USER_AGENTS


@dataclass
class Known:
    first_seen: datetime
    last_seen: datetime


@dataclass
class Baseline:
    tuning: Tuning = field(default_factory=Tuning)
    # account → start of observation
    scopes: dict[str, datetime] = field(default_factory=dict)
    # (account, identity) → when it was seen
    known: dict[tuple[str, str], Known] = field(default_factory=dict)
    # (account, identity) → its latest signal, which later calls of the burst join
    latest_signals: dict[tuple[str, str], Signal] = field(default_factory=dict)
    # (account, identity) → the calls it made while they were learned silently (during the learning
    # period, or a backfill), gathered like a signal's so that its severity says what it would have been:
    # the learning report (SPEC §8) shows them, so that nothing is dropped unseen. This batch's only.
    learned: dict[tuple[str, str], Signal] = field(default_factory=dict)

    def observe_all(self, calls: Iterable[Call], learn_only: bool = False,
                    sightings: Iterable[Sighting] = ()) -> list[Signal]:
        """Evaluate in eventTime order, whatever order the calls arrived in; the signals raised or grown.

        `sightings` (excluded callers' matching calls) only say since when an account has been observed."""
        calls = sorted(calls, key=lambda c: (c.event_time, c.event_id, c.content))  # a total order
        self._start_observing([*calls, *sightings])
        touched: dict[str, Signal] = {}
        for call in calls:
            signal = self.observe(call, learn_only)
            if signal is not None:
                touched[signal.signal_id] = signal
        return list(touched.values())

    def _start_observing(self, matched: list[Call | Sighting]) -> None:
        """An account not observed before is observed since its first matching record, whoever made it."""
        starts: dict[str, datetime] = {}
        for item in matched:
            if item.account_id not in self.scopes:
                starts[item.account_id] = min(item.event_time, starts.get(item.account_id, item.event_time))
        self.scopes.update(starts)

    def observe(self, call: Call, learn_only: bool = False) -> Signal | None:
        """One call, in eventTime order; returns the signal it raised or joined."""
        start = self.scopes.setdefault(call.account_id, call.event_time)
        key = (call.account_id, call.identity)
        signal = self.latest_signals.get(key)
        if signal is not None and self._joins(signal, call):
            signal.add(call, self.tuning.exercise_user_agents)
            self._seen(key, call.event_time)
            return signal
        is_known = self.is_known(key, call.event_time)
        self._seen(key, call.event_time)
        silent = learn_only or call.event_time < start + self.tuning.learning
        if silent:
            self._learn_silently(key, call)
        if is_known or silent:
            return None
        signal = Signal.start(call, self.tuning.exercise_user_agents)
        self.latest_signals[key] = signal
        return signal

    def _learn_silently(self, key: tuple[str, str], call: Call) -> None:
        learned = self.learned.get(key)
        if learned is None:
            self.learned[key] = Signal.start(call, self.tuning.exercise_user_agents)
        else:
            learned.add(call, self.tuning.exercise_user_agents)

    def is_known(self, key: tuple[str, str], moment: datetime) -> bool:
        seen = self.known.get(key)
        return seen is not None and moment - seen.last_seen <= self.tuning.forget

    def _joins(self, signal: Signal, call: Call) -> bool:
        return abs(call.event_time - signal.first_seen) <= self.tuning.group

    def _seen(self, key: tuple[str, str], moment: datetime) -> None:
        seen = self.known.get(key)
        if seen is None or moment - seen.last_seen > self.tuning.forget:
            self.known[key] = Known(first_seen=moment, last_seen=moment)
        else:
            seen.first_seen = min(seen.first_seen, moment)
            seen.last_seen = max(seen.last_seen, moment)
