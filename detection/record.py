"""Tolerant reading of one CloudTrail record into a `Call`, and the identity key (SPEC §1).

CloudTrail records change shape across eventVersion 1.02 … 1.10 and every field may be missing, of the
wrong type or hostile; Panther-style exports write `eventTime` as `2025-01-20 16:52:14.000000000`. Only
eventTime, eventSource, eventName and userIdentity are required; the rest falls back to empty.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from detection import rule

IDENTITY_KEYS = ("principal", "arn")
# Fields that are keys of the store's indexes, and the most bytes each may have. PostgreSQL refuses an
# index entry over about 2.7 KB, and one such record would fail the whole batch it came in, pass after
# pass. AWS keeps them far shorter (an ARN has at most 2,048 characters, an account ID 12 digits), so a
# longer one is a bad record, counted and skipped.
KEY_FIELD_BYTES = {"event_id": 256, "account_id": 64, "identity": 2048, "arn": 2048, "source_ip": 512}
# PostgreSQL cannot store a NUL character in text, so one record holding one (`\u0000` in JSON; AWS writes
# none) would fail the whole batch it came in, pass after pass: it is a bad record.
TEXT_FIELDS = ("event_id", "account_id", "identity", "identity_type", "arn", "event_source", "event_name", "region",
               "source_ip", "user_agent", "access_key_id", "error_code")
# The eventTimes a record can really carry: AWS began in 2006, and no log written now is dated past 2100.
# A time outside them is forged or damaged, and near datetime's own limits (years 1 and 9999) it could
# not take part in the baseline's arithmetic at all: learning, forgetting and grouping add days to it.
# With every duration at most a hundred years (baseline.LONGEST), that arithmetic stays in range.
EARLIEST_EVENT_TIME = datetime(2006, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)
# CloudTrail writes no future times: a record dated past now (plus this margin, for a clock a little behind
# AWS's) is forged or damaged. Read first for its account, it would start the account's observation in the
# future, and the account would learn silently, blind to every real enumeration, until then.
FUTURE_MARGIN = timedelta(minutes=15)
SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"
CONSOLE_USER_AGENT_PREFIX = "aws-internal/"

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?",
    re.IGNORECASE,
)


class BadRecord(ValueError):
    """A matching record that cannot be evaluated; skipped and counted."""


def parse_time(value: Any) -> datetime:
    """CloudTrail `2025-01-20T16:52:14Z`, Panther `2025-01-20 16:52:14.000000000`, offsets; UTC out.
    BadRecord for anything else, and for a time outside EARLIEST_EVENT_TIME … LATEST_EVENT_TIME."""
    if not isinstance(value, str) or len(value) > 64:
        raise BadRecord(f"eventTime is not a timestamp: {str(value)[:40]!r}")
    m = _TIME.fullmatch(value.strip())
    if not m:
        raise BadRecord(f"eventTime is not a timestamp: {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        written = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=_zone(zone),
        )
    except ValueError as exc:  # 30 February, hour 25, an offset of a day or more
        raise BadRecord(f"eventTime is not a date: {value[:40]!r}") from exc
    try:
        moment = written.astimezone(UTC)
    except OverflowError:  # the offset took it past year 1 or 9999: outside the range below as well
        raise _outside_range(value) from None
    if not EARLIEST_EVENT_TIME <= moment < LATEST_EVENT_TIME:
        raise _outside_range(value)
    return moment


def event_time(value: Any, now: datetime | None = None) -> datetime:
    """A record's eventTime (`parse_time`), which CloudTrail never writes in the future: BadRecord for a time
    past `now` (the clock's) plus FUTURE_MARGIN."""
    moment = parse_time(value)
    if moment > (now or datetime.now(UTC)) + FUTURE_MARGIN:
        raise BadRecord(f"eventTime in the future (forged or damaged): {value[:40]!r}")
    return moment


def _zone(zone: str | None) -> timezone:
    """`Z`, `UTC` or none (CloudTrail writes UTC), `+02:00`, `-0500`."""
    if not zone or zone.upper() in ("Z", "UTC"):
        return UTC
    sign = 1 if zone[0] == "+" else -1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _outside_range(value: str) -> BadRecord:
    return BadRecord(f"eventTime outside {EARLIEST_EVENT_TIME:%Y}–{LATEST_EVENT_TIME.year - 1} "
                     f"(forged or damaged): {value[:40]!r}")


def format_time(moment: datetime) -> str:
    """The CloudTrail form, with fractions only when the record had them."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def identity_key(user_identity: dict, mode: str = "principal") -> str | None:
    """Who made the call, as the baseline remembers them; None when the record names nobody."""
    arn = _text(user_identity.get("arn")).strip()
    if mode == "arn" or user_identity.get("type") != "AssumedRole":
        return arn or None
    issuer = _text(rule.session_issuer_arn(user_identity)).strip()
    if is_sso_role(issuer, arn):
        return arn or None  # an IAM Identity Center session name is the person
    # EC2, Lambda and CI session names change every session: key by the role, not the session.
    return issuer or role_arn_from_session(arn) or arn or None


def is_sso_role(issuer_arn: str, session_arn: str) -> bool:
    path = rule.role_path(issuer_arn)
    if path is not None:
        return path.startswith(SSO_ROLE_PATH)
    # No session issuer: IAM Identity Center role names all start AWSReservedSSO_.
    return ":assumed-role/AWSReservedSSO_" in session_arn


def is_identity_center_identity(identity: str, arn: str) -> bool:
    """Whether a signal's identity (its key) and ARN (a call's `userIdentity.arn`) are an IAM Identity Center
    session, decided as the identity key was: by the role's path when the key is the role's ARN (the session
    issuer's, which holds the path), by the role's name only when there is none (`arn` mode, or a record
    without a session issuer). An ordinary role at path `/` named `AWSReservedSSO_Backup` is not one."""
    return is_sso_role(identity if rule.role_path(identity) is not None else "", arn)


def role_arn_from_session(session_arn: str) -> str | None:
    """arn:aws:sts::1:assumed-role/Name/session → arn:aws:iam::1:role/Name (the path is not recorded)."""
    m = re.fullmatch(r"arn:([\w-]+):sts::(\d*):assumed-role/([^/]+)/.*", session_arn)
    return f"arn:{m[1]}:iam::{m[2]}:role/{m[3]}" if m else None


def is_console_call(record: dict) -> bool:
    """Made from an AWS console session (a person clicking), per SPEC §1 "Severity"."""
    if str(record.get("sessionCredentialFromConsole", "")).lower() == "true":
        return True
    agent = _text(record.get("userAgent"))
    invoked_by = _text(_object(record.get("userIdentity")).get("invokedBy"))
    return (
        agent.startswith(CONSOLE_USER_AGENT_PREFIX)
        or agent in rule.CONSOLE_PRINCIPALS
        or invoked_by in rule.CONSOLE_PRINCIPALS
    )


@dataclass(frozen=True, slots=True)
class Call:
    """One matching SES enumeration call, normalised; all that detection and the store need. Two calls
    are equal when they are the same record: the same eventID and the same content."""

    event_id: str
    event_time: datetime
    account_id: str
    identity: str
    identity_type: str
    arn: str
    event_source: str
    event_name: str
    region: str
    source_ip: str
    user_agent: str
    access_key_id: str
    error_code: str
    from_console: bool

    @property
    def long_term_key(self) -> bool:
        return self.access_key_id.startswith("AKIA")

    @property
    def content(self) -> tuple:
        """All the call says but its eventID. Under one eventID, an equal content is the same record
        delivered again; another content is another record (damaged or forged input), which counts too."""
        return tuple(getattr(self, name) for name in CONTENT_FIELDS)

    @property
    def digest(self) -> str:
        """The content in 32 hex digits: beside the eventID, what tells two records under it apart."""
        return hashlib.sha256(orjson.dumps(self.content)).hexdigest()[:32]


CONTENT_FIELDS = tuple(f.name for f in fields(Call) if f.name != "event_id")


@dataclass(frozen=True, slots=True)
class Sighting:
    """A matching call by an excluded caller. It never signals and is never learned, but it is a matching
    record: it counts as matched, and it shows that the account was observed then (SPEC §1)."""

    event_id: str
    event_time: datetime
    account_id: str


def _account(record: dict) -> str:
    account = _text(record.get("recipientAccountId")) or _text(_object(record.get("userIdentity")).get("accountId"))
    if not account:
        raise BadRecord("no account (recipientAccountId missing)")
    return account


def _event_id(record: dict) -> str:
    """The eventID; de-duplication needs a key, so a record without one gets one from its content. A record
    that cannot be written back to JSON (orjson reads 1,024 levels of nesting but writes about 254) has no
    content to derive one from: a bad record, never a failed run or source."""
    event_id = _text(record.get("eventID"))
    if event_id:
        return event_id
    try:
        content = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson's "Recursion limit reached", or a value JSON cannot hold
        raise BadRecord(f"no eventID, and nested too deep to derive one from its content ({exc})") from None
    return "synthetic-" + hashlib.sha256(content).hexdigest()[:32]


def to_sighting(record: dict) -> Sighting | None:
    """A matching record of an excluded caller; None when it has no time or account."""
    try:
        return Sighting(_event_id(record), event_time(record.get("eventTime")), _account(record))
    except BadRecord:
        return None


def to_call(record: dict, mode: str = "principal") -> Call:
    """A matching, non-excluded record as a Call; BadRecord when it cannot be evaluated."""
    moment = event_time(record.get("eventTime"))
    user_identity = record.get("userIdentity")
    if not isinstance(user_identity, dict):
        raise BadRecord("no userIdentity")
    identity = identity_key(user_identity, mode)
    if identity is None:
        raise BadRecord("no usable identity (userIdentity.arn missing)")
    account = _account(record)
    call = Call(
        event_id=_event_id(record),
        event_time=moment,
        account_id=account,
        identity=identity,
        identity_type=_text(user_identity.get("type")) or "Unknown",
        arn=_text(user_identity.get("arn")),
        event_source=_text(record.get("eventSource")),
        event_name=_text(record.get("eventName")),
        region=_text(record.get("awsRegion")),
        source_ip=_text(record.get("sourceIPAddress")),
        user_agent=_text(record.get("userAgent")),
        access_key_id=_text(user_identity.get("accessKeyId")),
        error_code=_text(record.get("errorCode")),
        from_console=is_console_call(record),
    )
    for name, limit in KEY_FIELD_BYTES.items():
        if len(getattr(call, name).encode("utf-8", "surrogatepass")) > limit:
            raise BadRecord(f"{name} longer than {limit} bytes")
    for name in TEXT_FIELDS:
        if "\0" in getattr(call, name):
            raise BadRecord(f"{name} holds a NUL character")
    return call
