"""Values that go into a query: checked against a strict shape, then written as SQL literals.

Athena receives them as execution parameters (`?` in the SQL text; each parameter is itself a literal,
so strings carry their quotes). CloudTrail Lake has no parameters, so there the same literal is written
into the SQL text. Either way only values that passed a check below get that far: dates made by this
code, the rule's own constants, and identifiers (IDs, ARNs, IPs) that match AWS's documented shapes,
which hold no quote, backslash, blank or control character. `literal` refuses anything else outright
instead of escaping it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnsafeValue(ValueError):
    """A value that does not have the shape it must have to go into a query (it is never echoed whole)."""


# What any literal may hold: letters, digits and the punctuation of ARNs, dates, IPs and service names.
# Notably no quote, backslash, blank, semicolon, comment dash pair or control character.
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:/@+=,\-]{1,2048}")
# Athena names: lower-case letters, digits and underscores (Glue stores names in lower case).
_ATHENA_NAME = re.compile(r"[a-z0-9_]{1,255}")
# An event data store's ID: the last part of its ARN, letters, digits and hyphens (a UUID in practice).
_EVENT_DATA_STORE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{2,127}")
_EVENT_DATA_STORE_ARN = re.compile(r"arn:[\w-]+:cloudtrail:[a-z0-9-]+:\d{12}:eventdatastore/([A-Za-z0-9-]+)")
ACCOUNT_ID = re.compile(r"\d{12}")
ACCESS_KEY_ID = re.compile(r"A[KS]IA[A-Z0-9]{12,124}")
ARN = re.compile(r"arn:aws(-[a-z]+)*:(iam|sts)::\d{12}:[A-Za-z0-9_+=,.@/\-]{1,1900}")


def _shown(value: object) -> str:
    return repr(str(value)[:40])


def literal(value: str) -> str:
    """`'value'`, for a value of the safe alphabet only (so there is nothing to escape)."""
    if not isinstance(value, str) or not _SAFE_TEXT.fullmatch(value):
        raise UnsafeValue(f"refused as a query value: {_shown(value)}")
    return f"'{value}'"


def athena_table(name: str) -> tuple[str, str]:
    """`database.table` → (database, table), both plain Athena names; they are quoted into the SQL text."""
    database, dot, table = name.strip().partition(".")
    if not dot or not _ATHENA_NAME.fullmatch(database) or not _ATHENA_NAME.fullmatch(table):
        raise UnsafeValue(f"not an Athena database.table (lower-case letters, digits, _): {_shown(name)}")
    return database, table


def event_data_store(name: str) -> str:
    """An event data store's ID, from the ID itself or its ARN (Lake queries name the ID after FROM)."""
    name = name.strip()
    arn = _EVENT_DATA_STORE_ARN.fullmatch(name)
    store = arn[1] if arn else name
    if not _EVENT_DATA_STORE_ID.fullmatch(store):
        raise UnsafeValue(f"not a CloudTrail Lake event data store ID or ARN: {_shown(name)}")
    return store


def utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise UnsafeValue("a query's time bound must be a datetime with a time zone")
    return moment.astimezone(UTC)


def day(moment: datetime) -> str:
    """`2025-01-31`: the date part of CloudTrail's eventTime."""
    return utc(moment).strftime("%Y-%m-%d")


def partition_day(moment: datetime) -> str:
    """`2025/01/31`: the projected `timestamp` partition of the standard table (`yyyy/MM/dd`)."""
    return utc(moment).strftime("%Y/%m/%d")


def _ceil(moment: datetime, step: timedelta) -> datetime:
    moment = utc(moment)
    floor = moment - (moment - EPOCH) % step
    return floor if floor == moment else floor + step


def event_time_text(moment: datetime) -> str:
    """`2025-01-31T12:00:01Z`: CloudTrail's own eventTime text for the first whole second at or after `moment`.
    For an eventTime written that way (whole seconds), `text >= event_time_text(m)` is exactly `time >= m`."""
    return _ceil(moment, timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_literal(moment: datetime) -> str:
    """`'2025-01-31 12:00:00.001'`: a Lake eventTime bound (milliseconds, Lake's precision), the first one at or
    after `moment`. Made from a datetime, never from text: its one blank is the only character outside the
    value alphabet."""
    text = _ceil(moment, timedelta(milliseconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"'{text}'"


def account_id(value: str) -> str:
    if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
        raise UnsafeValue(f"not an AWS account ID: {_shown(value)}")
    return value


def access_key_id(value: str) -> str:
    if not isinstance(value, str) or not ACCESS_KEY_ID.fullmatch(value):
        raise UnsafeValue(f"not an access key ID: {_shown(value)}")
    return value


def arn(value: str) -> str:
    if not isinstance(value, str) or not ARN.fullmatch(value):
        raise UnsafeValue(f"not an IAM or STS ARN: {_shown(value)}")
    return value


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address, written back in its canonical form (what CloudTrail records)."""
    if not isinstance(value, str):
        raise UnsafeValue(f"not an IP address: {_shown(value)}")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise UnsafeValue(f"not an IP address: {_shown(value)}") from None
