"""What the worker's sources have in common: where they read (an account and a region), what one
read brings back, and how a read fails. `bot.poll` drives any source through this interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from detection.record import Call
from detection.sources.files import FileScan


def describe_aws_error(exc: Exception) -> str:
    """One line for a botocore error: the AWS error code and message, or the exception's name and text."""
    response = getattr(exc, "response", None)  # botocore's ClientError carries the parsed error
    error = response.get("Error") if isinstance(response, dict) else None
    if isinstance(error, dict) and error:
        return f"{error.get('Code', 'error')}: {str(error.get('Message', ''))[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class SourceError(RuntimeError):
    """This account/region (or the whole source) could not be read this pass; the next pass retries."""


class Interrupted(Exception):
    """The process is stopping: the read was abandoned between two requests (nothing is lost)."""


@dataclass(frozen=True, order=True)
class AccountRegion:
    account_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region}"


@dataclass
class Pulled:
    """The matching calls one read brought back, with counts, and what to remember once they are stored."""

    calls: list[Call] = field(default_factory=list)
    records: int = 0  # records seen (matching or not)
    reads: int = 0  # API pages or log files read
    bad: list[str] = field(default_factory=list)
    read_keys: list[str] = field(default_factory=list)  # S3 objects to remember as read

    def add(self, scanned: FileScan) -> None:
        self.reads += 1
        self.records += scanned.records
        self.calls.extend(scanned.calls)
        self.bad.extend(f"{scanned.name}: {problem}" for problem in scanned.bad)
        if scanned.error:
            self.bad.append(f"{scanned.name}: {scanned.error}")


# Called between two requests of a read: keeps the caller's lease alive, raises Interrupted on shutdown.
BetweenRequests = Callable[[], None]


class Source(Protocol):
    name: str  # the poll_state key: "lookup" or the s3:// URL
    history: timedelta | None  # how far back the source reaches (None: as far as asked)

    def places(self) -> list[AccountRegion]: ...

    def pull(self, place: AccountRegion, start: datetime, end: datetime, between: BetweenRequests) -> Pulled: ...

    def remember(self, pulled: Pulled) -> None:
        """Called once the pulled calls are stored."""
