"""A SQL engine's rows back into CloudTrail records, and through the same rule and parsing as files.

Each call row is rebuilt into the record dict it came from — the fields `detection.record` and
`detection.rule` read, under CloudTrail's own names — and passed to `rule.matches`,
`rule.is_excluded_caller` and `record.to_call` exactly as a record read from a file is. So the SQL decides
only which rows travel; what a row means is decided by the same code for every source. A NULL column is a
field the record did not have; every value is text (CloudTrail's own types for these fields).

An excluded callers' summary row (one per account, `query`) becomes one `Sighting` at its first eventTime;
the calls it stands for are counted as matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from detection import rule
from detection.record import BadRecord, Sighting, event_time, to_call
from detection.sources.files import FileScan
from detection.sources.sql.query import ACCOUNT, ROW_COUNT, SUMMARISED

# Row column → where CloudTrail writes it in a record.
TOP_LEVEL = {
    "event_id": "eventID", "event_time": "eventTime", "event_source": "eventSource", "event_name": "eventName",
    "aws_region": "awsRegion", "source_ip": "sourceIPAddress", "user_agent": "userAgent",
    "error_code": "errorCode", "recipient_account": "recipientAccountId",
    "from_console": "sessionCredentialFromConsole",
}
IDENTITY = {
    "identity_type": "type", "identity_arn": "arn", "identity_account": "accountId",
    "access_key_id": "accessKeyId", "invoked_by": "invokedBy",
}
TRUE_TEXT = ("true", "1")


@dataclass
class Figures:
    """What the engine says about a query: its own ID, bytes scanned, run time, pages of results."""

    engine: str  # "athena" or "lake"
    query_id: str = ""
    bytes_scanned: int = 0
    engine_millis: int | None = None
    total_millis: int | None = None
    rows: int = 0
    pages: int = 0
    events_scanned: int | None = None  # Lake says how many events it read

    def line(self, name: str) -> str:
        parts = [f"{name}: {self.engine} query {self.query_id}: {self.rows} rows in {self.pages} pages",
                 f"{_size(self.bytes_scanned)} scanned"]
        if self.events_scanned is not None:
            parts.append(f"{self.events_scanned} events scanned")
        if self.engine_millis is not None:
            parts.append(f"{self.engine_millis / 1000:.1f} s engine time")
        if self.total_millis is not None:
            parts.append(f"{self.total_millis / 1000:.1f} s in all")
        return ", ".join(parts)


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} bytes"


@dataclass
class EngineScan(FileScan):
    """A query's contribution, in the shape of a file's: `records` counts the rows the engine matched (a call
    delivered twice is one row); `summarised` the excluded callers' calls that came back as one row per account."""

    summarised: int = 0
    not_matching: int = 0  # rows the Python rule refused (the SQL's wider bounds), dropped
    figures: Figures | None = None
    failed: str | None = None  # the query's one-line failure, once reported (`error` then left empty)


def to_record(row: Mapping[str, Any]) -> dict:
    """The CloudTrail record a call row stands for (only the fields the rule and the record parsing read)."""
    record: dict[str, Any] = {key: row[column] for column, key in TOP_LEVEL.items() if row.get(column) is not None}
    identity = {key: row[column] for column, key in IDENTITY.items() if row.get(column) is not None}
    if row.get("issuer_arn") is not None:
        identity["sessionContext"] = {"sessionIssuer": {"arn": row["issuer_arn"]}}
    record["userIdentity"] = identity
    if row.get("service_code") is not None:
        record["requestParameters"] = {"serviceCode": row["service_code"]}
    return record


def _count(value: Any) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def _is_summary(row: Mapping[str, Any]) -> bool:
    flag = row.get(SUMMARISED)
    return flag is True or (isinstance(flag, str) and flag.lower() in TRUE_TEXT)


def scan_rows(name: str, rows: Iterable[Mapping[str, Any]], identity_mode: str = "principal",
              since=None, until=None) -> EngineScan:
    """Calls and sightings from a query's rows; rows outside [since, until) (the SQL's wider bounds) dropped."""
    scanned = EngineScan(name)
    for number, row in enumerate(rows, 1):
        count = _count(row.get(ROW_COUNT))
        if _is_summary(row):
            _summary_row(scanned, row, count, since, until)
            continue
        scanned.records += count
        record = to_record(row)
        if not rule.matches(record):
            scanned.not_matching += 1
            continue
        try:
            moment = event_time(record.get("eventTime"))
        except BadRecord as exc:
            scanned.bad.append(f"row {number}: {exc}")
            continue
        if (since is not None and moment < since) or (until is not None and moment >= until):
            scanned.records -= count
            continue
        if rule.is_excluded_caller(record):  # the SQL let it through: the Python rule still decides
            sighting = Sighting(record.get("eventID") or f"sql-row-{number}", moment, _account_of(row))
            if sighting.account_id:
                scanned.sightings.append(sighting)
            continue
        try:
            scanned.calls.append(to_call(record, identity_mode))
        except BadRecord as exc:
            scanned.bad.append(f"row {number}: {exc}")
    return scanned


def _account_of(row: Mapping[str, Any]) -> str:
    value = row.get(ACCOUNT)
    return value if isinstance(value, str) else ""


def _summary_row(scanned: EngineScan, row: Mapping[str, Any], count: int, since, until) -> None:
    """One account's excluded callers: observed since their first call (times outside the bounds ignored)."""
    account = _account_of(row)
    try:
        moment = event_time(row.get("event_time"))
    except BadRecord:
        moment = None
    scanned.records += count
    if not account or moment is None or (since is not None and moment < since) \
            or (until is not None and moment >= until):
        return  # the query summarises only times inside the bounds: never met with AWS's own answers
    scanned.sightings.append(Sighting(f"sql-excluded-callers-{account}", moment, account))
    scanned.summarised += count - 1  # the one Sighting counts itself
