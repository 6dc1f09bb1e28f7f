"""An identity's other CloudTrail activity through LookupEvents (SPEC §6): every event source, by each of
its lookup attributes (AccessKeyId, Username), in each region asked, in its account.

Requests go through the LookupEvents source's own account clients (`LookupSource.access`): the same
credentials (the account's role when it came from one) and the same per account/region pace, booked in
`request_slots` under the same key. An investigation running while a worker polls therefore never pushes
an account/region over 2 requests in a second; it waits its turn like any poll. Regions are read side by
side (each has its own budget), the lookups of one region one after the other.

A page cap bounds the whole investigation. LookupEvents answers newest first, so a read stopped by the
cap is complete back to the oldest event it reached, and the reading says from when.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from detection.investigate import Lookup, Reading, Subject, Summary, Window, lookups, summarise
from detection.record import BadRecord, parse_time
from detection.sources.lookup import AccountAccess, LookupSource, lookup_page
from detection.sources.pulled import AccountRegion, BetweenRequests, SourceError

MAX_PARALLEL_REGIONS = 8


@dataclass
class Gathered:
    records: list[dict] = field(default_factory=list)
    reading: Reading = field(default_factory=Reading)


class _PageBudget:
    """The page cap, shared by the regions read side by side."""

    def __init__(self, pages: int):
        self.left = pages
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class ActivityReader:
    def __init__(self, source: LookupSource, max_pages: int):
        self.source, self.max_pages = source, max_pages

    def investigate(self, subject: Subject, window: Window, regions: Iterable[str],
                    between: BetweenRequests = lambda: None) -> Summary:
        """Read the subject's records in the window and summarise them."""
        gathered = self.read(subject, window, regions, between)
        return summarise(gathered.records, subject, window, gathered.reading)

    def read(self, subject: Subject, window: Window, regions: Iterable[str],
             between: BetweenRequests = lambda: None) -> Gathered:
        """Every record the subject's lookups return in the window, in each region of each account.

        A lookup that fails is named in the reading's problems and the others go on; `between` runs
        before each request (it may raise to stop the read).
        """
        gathered = Gathered(reading=Reading(page_cap=self.max_pages))
        attributes = lookups(subject)
        if not attributes:
            gathered.reading.problems.append("nothing to look up by: no access key or user name is known")
            return gathered
        try:
            accounts = [subject.account_id] if subject.account_id else self.source.accounts()
        except SourceError as exc:
            gathered.reading.problems.append(str(exc))
            return gathered
        places = [AccountRegion(account, region) for account in accounts for region in sorted(set(regions))]
        budget = _PageBudget(self.max_pages)
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_REGIONS, len(places))),
                                thread_name_prefix="investigate") as pool:
            parts = list(pool.map(lambda place: self._read_place(place, attributes, window, budget, between),
                                  places))
        reading = gathered.reading
        complete_since: list[datetime] = []
        for part in parts:
            gathered.records += part.records
            reading.lookups += part.reading.lookups
            reading.pages += part.reading.pages
            reading.problems += part.reading.problems
            if part.reading.capped:
                reading.capped = True
            if part.reading.complete_since is not None:  # set exactly when the part was capped
                complete_since.append(part.reading.complete_since)
        reading.complete_since = max(complete_since) if complete_since else None
        return gathered

    def _read_place(self, place: AccountRegion, attributes: list[Lookup], window: Window, budget: _PageBudget,
                    between: BetweenRequests) -> Gathered:
        part = Gathered()
        try:
            access = self.source.access(place.account_id)
        except SourceError as exc:
            part.reading.problems.append(f"{place}: {exc}")
            return part
        for attribute in attributes:
            part.reading.lookups.append(f"{attribute} in {place}")
            try:
                self._read_lookup(access, place, attribute, window, budget, between, part)
            except SourceError as exc:
                part.reading.problems.append(f"{attribute}: {exc}")
        return part

    def _read_lookup(self, access: AccountAccess, place: AccountRegion, attribute: Lookup, window: Window,
                     budget: _PageBudget, between: BetweenRequests, part: Gathered) -> None:
        lookup_attribute = {"AttributeKey": attribute.key, "AttributeValue": attribute.value}
        token: str | None = None
        oldest: datetime | None = None
        while True:
            if not budget.take():
                part.reading.capped = True
                reached = oldest or window.end
                part.reading.complete_since = max(part.reading.complete_since or reached, reached)
                return
            between()
            page = lookup_page(access, place, lookup_attribute, window.start, window.end, token,
                               self.source.backoff, self.source.sleep)
            part.reading.pages += 1
            for entry in page["Events"]:
                record = _record(entry)
                if record is None:
                    part.reading.unreadable += 1
                    continue
                part.records.append(record)
                moment = _time(record)
                if moment is not None and (oldest is None or moment < oldest):
                    oldest = moment
            next_token = page.get("NextToken")
            if not next_token:
                return
            if next_token == token:
                raise SourceError(f"LookupEvents {place}: the same NextToken came back twice")
            token = next_token


def _record(entry: object) -> dict | None:
    """The CloudTrail record inside a LookupEvents entry; its `readOnly` from the entry when it lacks one."""
    if not isinstance(entry, dict) or not isinstance(entry.get("CloudTrailEvent"), str):
        return None
    try:
        record = orjson.loads(entry["CloudTrailEvent"])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    if "readOnly" not in record and "ReadOnly" in entry:
        record["readOnly"] = entry["ReadOnly"]
    return record


def _time(record: dict) -> datetime | None:
    try:
        return parse_time(record.get("eventTime"))
    except BadRecord:
        return None
