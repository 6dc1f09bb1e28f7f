"""Detection over a set of CloudTrail inputs: read, match, evaluate in eventTime order, store (SPEC §2 `scan`).

The same function serves `sesguard scan`, `sesguard demo` and the tests; the worker feeds the same
baseline through `detect()` with the calls it pulled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING

from detection.baseline import Baseline, Tuning
from detection.record import Call, Sighting
from detection.signals import Signal
from detection.sources.files import FileScan
from detection.sources.inputs import Input, scan_inputs

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported only by callers that use one
    from detection.store import Store


# An archive can hold millions of bad records: all are counted, the first ones named.
MAX_BAD_RECORDS_KEPT = 1000


@dataclass
class ScanSummary:
    records: int = 0
    files: int = 0
    matched: int = 0
    signals: int = 0
    bad_count: int = 0
    bad_records: list[str] = field(default_factory=list)  # the first ones: "file: record N: reason"
    corrupt_files: list[str] = field(default_factory=list)  # "file: reason"

    def line(self) -> str:
        return (
            f"scanned {self.records} records in {self.files} files: {self.matched} matched, "
            f"{self.signals} signals, {self.bad_count} bad records skipped"
        )

    def add(self, scanned: FileScan) -> None:
        self.files += 1
        self.records += scanned.records
        self.bad_count += len(scanned.bad)
        room = MAX_BAD_RECORDS_KEPT - len(self.bad_records)
        self.bad_records.extend(f"{scanned.name}: {problem}" for problem in scanned.bad[:max(0, room)])
        if scanned.error:
            self.corrupt_files.append(f"{scanned.name}: {scanned.error}")


def detect(
    calls: Iterable[Call],
    tuning: Tuning,
    store: Store | None = None,
    baseline: Baseline | None = None,
    learn_only: bool = False,
    now: datetime | None = None,
    sightings: Iterable[Sighting] = (),
) -> tuple[list[Signal], list[Call]]:
    """Evaluate new calls; with a store, against its state and saved back. (signals touched, calls taken)

    `sightings`, the excluded callers' matching calls, only mark when observation of an account began."""
    unique = distinct(calls)
    if store is None:
        baseline = baseline or Baseline(tuning)
        return baseline.observe_all(unique, learn_only, sightings), unique
    fresh = store.new_calls(unique)
    sightings = list(sightings)
    if not fresh and not sightings:  # everything was stored before (a steady poll's look-back): nothing to do
        return [], []
    baseline = store.load_baseline(fresh, tuning)
    signals = baseline.observe_all(fresh, learn_only, sightings)
    store.save_detection(baseline, fresh, signals, now)
    return signals, fresh


def distinct(calls: Iterable[Call]) -> list[Call]:
    """Each record once: one delivered twice (the same eventID, the same content) counts once. Two
    different records under one eventID (damaged or forged input) both count: keeping one would hide the
    other, and across `--db` runs, which one the store saw first would decide what a later run finds."""
    return list(dict.fromkeys(calls))


def scan(
    inputs: Iterable[Input],
    tuning: Tuning,
    identity_mode: str = "principal",
    store: Store | None = None,
    jobs: int = 1,
    progress: Callable[[ScanSummary], None] | None = None,
    read_already: Iterable[FileScan] = (),
) -> tuple[list[Signal], ScanSummary]:
    """Scan every input; only matching calls are kept in memory, evaluated once all files are read
    (CloudTrail files are not ordered, and the answer must not depend on the order they come in).

    `read_already`: what SQL engines returned (`detection.sources.sql`), one input each, evaluated with the files."""
    summary = ScanSummary()
    calls: list[Call] = []
    sightings: set[Sighting] = set()  # each record once, as calls are
    summarised = 0  # excluded callers' calls an engine returned as one row per account
    for scanned in chain(read_already, scan_inputs(inputs, identity_mode, jobs)):
        summarised += getattr(scanned, "summarised", 0)
        summary.add(scanned)
        calls.extend(scanned.calls)
        sightings.update(scanned.sightings)
        if progress is not None:
            progress(summary)
    signals, taken = detect(calls, tuning, store, sightings=sightings)
    summary.matched = len(taken) + len(sightings) + summarised
    signals.sort(key=lambda s: (s.first_seen, s.account_id, s.identity))
    summary.signals = len(signals)
    return signals, summary
