"""What else an identity did (SPEC §6): its other CloudTrail activity in a window, summarised.

Pure: CloudTrail records in, a `Summary` out. Which records to ask LookupEvents for (`lookups`) and which
of the answers are the identity's (`belongs`) are decided here as well; reading them is
`detection.sources.activity`, and the follow-on moves are the data of `detection.playbook`.

A LookupEvents answer by `Username` holds every principal of that name in the account (an IAM user and
an EC2 session called `alice` alike), so each record is kept only when it carries one of the identity's
access keys or the identity itself. The enumeration calls that raised the signal are left out: the
question is what *else* the identity did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from detection import playbook, rule
from detection.record import BadRecord, format_time, identity_key, parse_time

# The window opens an hour before the first enumeration call: the key's first moves (a GetCallerIdentity,
# a ListUsers) often come just before it.
BEFORE_FIRST_SEEN = timedelta(hours=1)
TOP_APIS = 15
MAX_HOURS = 90 * 24.0  # LookupEvents keeps 90 days
# What an answer about an IP address says of itself: LookupEvents has no source-address attribute.
ADDRESS_NOTE = ("LookupEvents cannot search by source address: these are the SES enumeration calls from it that "
                "sesguard stored, across identities. A SQL engine over the trail (SPEC §9: SESGUARD_ATHENA_TABLE "
                "or SESGUARD_LAKE_EVENT_DATA_STORE) would show all of its traffic.")
USERNAME, ACCESS_KEY_ID = "Username", "AccessKeyId"


# ── what to read ─────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def signal_window(first_seen: datetime, last_seen: datetime, hours: float, now: datetime) -> Window:
    """A signal's window: `[first_seen − 1 h, min(now, last_seen + hours)]`."""
    start = first_seen - BEFORE_FIRST_SEEN
    end = min(_whole_second(now), last_seen + timedelta(hours=hours))
    return Window(start, max(start, end))


def recent_window(hours: float, now: datetime) -> Window:
    """The last `hours` up to now: for an ARN or a key asked about without a signal."""
    end = _whole_second(now)
    return Window(end - timedelta(hours=hours), end)


@dataclass(frozen=True)
class Subject:
    """Whose activity an investigation reads: an identity (a signal's, or an ARN asked about), or
    whoever used an access key."""

    label: str  # what was asked about, as it is shown
    account_id: str | None  # None: every account sesguard reads (an access key names none)
    identity: str | None  # the identity (key, ARN or role ARN) its records carry; None: whoever used the keys
    identity_type: str = ""
    access_keys: tuple[str, ...] = ()
    usernames: tuple[str, ...] = ()  # LookupEvents' Username: the user name, or the role session's name
    named_keys: frozenset[str] = frozenset()  # keys whose caller is known to be one of `usernames`
    regions: tuple[str, ...] = ()  # where it was seen, read beside AWS_REGIONS
    identity_mode: str = "principal"
    # The first SES enumeration call: follow-on abuse is what came at or after it (None: not known, so
    # every playbook call of the window is shown).
    enumeration_start: datetime | None = None
    enumeration_event_ids: frozenset[str] = frozenset()  # the signal's own calls: not "other" activity
    # An address asked about (SPEC §6, with a SQL engine, §9): its whole traffic, whoever called.
    source_ip: str | None = None


@dataclass(frozen=True)
class Lookup:
    """One LookupAttribute: LookupEvents takes exactly one per request."""

    key: str  # Username | AccessKeyId
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


def lookups(subject: Subject) -> list[Lookup]:
    """The LookupAttributes that find the subject's records: by each name, and by each key not covered.

    Every call made with a key carries its caller's name: an IAM user's, or the role session's. A key whose
    caller is looked up by name is therefore covered by that lookup (so are the calls of keys the attacker
    creates for the same user); asking by the key as well would spend the shared 2 requests a second
    twice for the same records. A key of an unknown caller is looked up by itself.
    """
    by_key = [Lookup(ACCESS_KEY_ID, key) for key in subject.access_keys if key not in subject.named_keys]
    return by_key + [Lookup(USERNAME, name) for name in subject.usernames]


def username_of(arn: str, identity_type: str) -> str | None:
    """LookupEvents' Username of a caller: an IAM user's name, a role session's or federated user's
    name, `root` for the root user; None when the ARN names none (a role ARN)."""
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    if identity_type == "Root" or resource == "root":
        return "root"
    kind, _, rest = resource.partition("/")
    if kind in ("user", "federated-user") and rest:
        return rest.rsplit("/", 1)[-1]
    if kind == "assumed-role" and "/" in rest:
        return rest.split("/", 1)[1]
    return None


def account_of(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 and parts[0] == "arn" and parts[4].isdigit() else None


def belongs(record: dict, subject: Subject) -> bool:
    """The record is the subject's: made with one of its keys, or by the identity itself."""
    user_identity = record.get("userIdentity")
    if not isinstance(user_identity, dict):
        return False
    if subject.source_ip is not None:
        return _text(record.get("sourceIPAddress")) == subject.source_ip
    if subject.account_id and _text(record.get("recipientAccountId")) not in ("", subject.account_id):
        return False
    if _text(user_identity.get("accessKeyId")) in subject.access_keys:
        return True
    if subject.identity is None:
        return False
    callers = {identity_key(user_identity, subject.identity_mode), _text(user_identity.get("arn")),
               _text(rule.session_issuer_arn(user_identity))}
    return subject.identity in callers


# ── the summary ──────────────────────────────────────────────────────────────────────────────────────


@dataclass
class Reading:
    """How the records were read, as the reader reports it (pages, the cap, what failed)."""

    lookups: list[str] = field(default_factory=list)  # e.g. "Username=alice in 111122223333/us-east-1"
    pages: int = 0
    page_cap: int | None = None
    capped: bool = False
    # With the cap hit, LookupEvents (newest first) was read back to here: older calls may be missing.
    complete_since: datetime | None = None
    problems: list[str] = field(default_factory=list)  # lookups that failed, and why
    unreadable: int = 0  # entries whose CloudTrailEvent is not a JSON record


@dataclass(frozen=True)
class Activity:
    """One record, as much of it as the summary uses."""

    event_id: str
    at: datetime
    event_source: str
    event_name: str
    region: str
    source_ip: str
    user_agent: str
    access_key_id: str
    error_code: str
    write: bool  # readOnly false, or not said (better looked at once too often)

    @property
    def api(self) -> str:
        return api_name(self.event_source, self.event_name)


@dataclass
class ApiCalls:
    api: str  # ses:SendEmail
    calls: int
    write: bool
    failed: int = 0
    denied: int = 0


@dataclass
class FollowOn:
    api: str
    event_name: str
    why: str
    calls: int
    failed: int
    first_at: datetime
    last_at: datetime


@dataclass
class Summary:
    subject: str
    account_id: str | None
    window: Window
    calls: int = 0
    writes: int = 0
    apis: list[ApiCalls] = field(default_factory=list)  # write calls first, then the most called
    errors: dict[str, int] = field(default_factory=dict)
    denied: int = 0  # AccessDenied and its kin: permission probing
    regions: dict[str, int] = field(default_factory=dict)
    source_ips: dict[str, int] = field(default_factory=dict)
    user_agents: dict[str, int] = field(default_factory=dict)
    access_keys: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None
    enumeration_start: datetime | None = None
    follow_on: list[FollowOn] = field(default_factory=list)  # in the order they first happened
    enumeration_calls: int = 0  # the signal's own calls, found and left out
    unreadable: int = 0  # records that cannot be read (no JSON, no time, no event ID)
    reading: Reading = field(default_factory=Reading)

    @property
    def follow_on_names(self) -> list[str]:
        return [move.event_name for move in self.follow_on]

    def top_apis(self, count: int = TOP_APIS) -> tuple[list[ApiCalls], int, int]:
        """The first `count` APIs, and how many APIs and calls the rest are."""
        shown, rest = self.apis[:count], self.apis[count:]
        return shown, len(rest), sum(api.calls for api in rest)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, times as CloudTrail writes them."""
        return _jsonable(self)


def api_name(event_source: str, event_name: str) -> str:
    """`iam.amazonaws.com` + `CreateAccessKey` → `iam:CreateAccessKey`, as IAM policies write it."""
    service = event_source.removesuffix(".amazonaws.com") or "?"
    return f"{service}:{event_name or '?'}"


def is_denial(error_code: str) -> bool:
    """AccessDenied, AccessDeniedException, UnauthorizedOperation, Client.UnauthorizedOperation, …"""
    return "AccessDenied" in error_code or "Unauthorized" in error_code


def summarise(records: Iterable[Any], subject: Subject, window: Window, reading: Reading | None = None) -> Summary:
    """The subject's other activity in the window: the records that are its own, each counted once."""
    reading = reading or Reading()
    summary = Summary(subject.label, subject.account_id, window, enumeration_start=subject.enumeration_start,
                      unreadable=reading.unreadable, reading=reading)
    seen: dict[str, Activity] = {}
    for record in records:
        if not isinstance(record, dict) or not belongs(record, subject):
            continue
        activity = _activity(record)
        if activity is None:
            summary.unreadable += 1
        elif activity.at in window and activity.event_id not in seen:
            seen[activity.event_id] = activity
    own = [a for a in seen.values() if a.event_id not in subject.enumeration_event_ids]
    summary.enumeration_calls = len(seen) - len(own)
    own.sort(key=lambda a: (a.at, a.event_id))
    _count(summary, own)
    summary.follow_on = _follow_on(own, subject.enumeration_start)
    return summary


def _count(summary: Summary, activities: list[Activity]) -> None:
    apis: dict[str, ApiCalls] = {}
    errors: Counter[str] = Counter()
    regions: Counter[str] = Counter()
    ips: Counter[str] = Counter()
    agents: Counter[str] = Counter()
    keys: Counter[str] = Counter()
    for activity in activities:
        calls = apis.setdefault(activity.api, ApiCalls(activity.api, 0, activity.write))
        calls.calls += 1
        calls.write = calls.write or activity.write
        if activity.error_code:
            calls.failed += 1
            errors[activity.error_code] += 1
            if is_denial(activity.error_code):
                calls.denied += 1
                summary.denied += 1
        regions[activity.region] += 1
        ips[activity.source_ip] += 1
        agents[activity.user_agent] += 1
        keys[activity.access_key_id] += 1
    summary.calls = len(activities)
    summary.writes = sum(1 for a in activities if a.write)
    summary.apis = sorted(apis.values(), key=lambda api: (not api.write, -api.calls, api.api))
    summary.errors, summary.regions = _ranked(errors), _ranked(regions)
    summary.source_ips, summary.user_agents, summary.access_keys = _ranked(ips), _ranked(agents), _ranked(keys)
    if activities:
        summary.first_at, summary.last_at = activities[0].at, activities[-1].at


def _follow_on(activities: list[Activity], since: datetime | None) -> list[FollowOn]:
    found: dict[str, FollowOn] = {}
    for activity in activities:
        move = playbook.move_of(activity.event_source, activity.event_name)
        if move is None or (since is not None and activity.at < since):
            continue
        entry = found.setdefault(activity.api, FollowOn(activity.api, move.event_name, move.why, 0, 0,
                                                        activity.at, activity.at))
        entry.calls += 1
        entry.failed += bool(activity.error_code)
        entry.last_at = activity.at
    return list(found.values())


def _activity(record: dict) -> Activity | None:
    event_id = _text(record.get("eventID"))
    try:
        moment = parse_time(record.get("eventTime"))
    except BadRecord:
        return None
    if not event_id:
        return None
    user_identity = record.get("userIdentity")
    if not isinstance(user_identity, dict):
        user_identity = {}
    return Activity(
        event_id=event_id, at=moment, event_source=_text(record.get("eventSource")),
        event_name=_text(record.get("eventName")), region=_text(record.get("awsRegion")),
        source_ip=_text(record.get("sourceIPAddress")), user_agent=_text(record.get("userAgent")),
        access_key_id=_text(user_identity.get("accessKeyId")), error_code=_text(record.get("errorCode")),
        write=read_only(record.get("readOnly")) is not True,
    )


def read_only(value: Any) -> bool | None:
    """CloudTrail's `readOnly` (a boolean in records, a string in LookupEvents); None when not said."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ranked(counts: Counter) -> dict[str, int]:
    """Most first, ties by value; an empty value shows as "-"."""
    ranked: Counter = Counter()
    for value, count in counts.items():
        ranked[value or "-"] += count
    return dict(sorted(ranked.items(), key=lambda item: (-item[1], item[0])))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value
