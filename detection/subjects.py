"""Whose activity an investigation reads (SPEC §6): a signal's identity, or an ARN or access key asked
about, completed with what the store saw it use: which access key each caller used (an IAM user, a role
session), the callers' names, its regions, its first enumeration call.

LookupEvents knows callers by key or by name only. A role is the identity of all its sessions: the stored
enumeration calls say which sessions (names, keys) to ask for. Knowing which caller used a key also tells
whether the key needs a lookup of its own: a key whose caller's name is looked up does not (`Subject`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col, select

from detection.investigate import Subject, Window, account_of, username_of
from detection.store import EventRow, SignalRow, Store

# AWS access key IDs: a four-letter kind (AKIA long-term, ASIA temporary, …) and 16 to 128 characters.
ACCESS_KEY_ID = re.compile(r"A[KS]IA[A-Z0-9]{12,124}")
ARN = re.compile(r"arn:[\w-]+:(iam|sts)::\d{12}:\S+")
# Each name costs at least one request per region of the shared budget.
MAX_USERNAMES = 10
IP, KEY, IDENTITY = "ip", "access key", "identity"


def kind_of(term: str) -> str | None:
    """What a term asked about is: an IP address, an access key ID, an IAM/STS ARN; None otherwise."""
    try:
        ipaddress.ip_address(term)
        return IP
    except ValueError:
        pass
    if ACCESS_KEY_ID.fullmatch(term):
        return KEY
    if ARN.fullmatch(term):
        return IDENTITY
    return None


def type_of_arn(arn: str) -> str:
    """The userIdentity.type an ARN stands for ("" for a role: its sessions are AssumedRole)."""
    resource = arn.split(":", 5)[-1]
    if resource == "root":
        return "Root"
    return {"user": "IAMUser", "assumed-role": "AssumedRole", "federated-user": "FederatedUser"}.get(
        resource.split("/", 1)[0], "")


@dataclass(frozen=True)
class Seen:
    """What the stored enumeration calls of an identity or key show."""

    used: tuple[tuple[str, str], ...]  # (access key, caller ARN), first used first
    regions: tuple[str, ...]
    first: datetime | None  # the first stored enumeration call


def _seen(store: Store, where: sa.ColumnElement[bool]) -> Seen:
    with store.session() as session:
        rows = session.exec(
            select(EventRow.access_key_id, EventRow.arn, EventRow.region, sa.func.min(EventRow.event_time))
            .where(where).group_by(EventRow.access_key_id, EventRow.arn, EventRow.region)
            .order_by(sa.func.min(EventRow.event_time))
        ).all()
    first = min((moment for *_, moment in rows), default=None)
    return Seen(
        used=tuple(dict.fromkeys((key, arn) for key, arn, _, _ in rows)),
        regions=tuple(sorted({region for _, _, region, _ in rows if region})),
        # SQLite hands aggregates back without their zone
        first=first.replace(tzinfo=UTC) if first is not None and first.tzinfo is None else first,
    )


def _callers(arns: list[str], used: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The names to look up (at most MAX_USERNAMES), and the keys whose caller is one of them."""
    names: list[str] = []
    for arn in [*arns, *(caller for _, caller in used)]:
        name = username_of(arn, type_of_arn(arn))
        if name and name not in names:
            names.append(name)
    names = names[:MAX_USERNAMES]
    named = frozenset(key for key, caller in used if key and username_of(caller, type_of_arn(caller)) in names)
    return tuple(names), named


def for_signal(store: Store, signal: SignalRow, identity_mode: str) -> Subject:
    """The identity of a stored signal: its keys, the names of the sessions that enumerated, its regions."""
    seen = _seen(store, col(EventRow.signal_id) == signal.signal_id)
    usernames, named_keys = _callers([signal.arn], seen.used)
    return Subject(
        label=signal.identity, account_id=signal.account_id, identity=signal.identity,
        identity_type=signal.identity_type, access_keys=tuple(signal.access_key_ids), usernames=usernames,
        named_keys=named_keys, regions=tuple(signal.regions), identity_mode=identity_mode,
        enumeration_start=signal.first_seen, enumeration_event_ids=frozenset(signal.event_ids),
    )


def for_term(store: Store, term: str, window: Window, identity_mode: str) -> Subject:
    """An ARN or access key asked about (`kind_of` says which): what the store saw it use in the window."""
    kind = kind_of(term)
    in_window = col(EventRow.event_time).between(window.start, window.end)
    if kind == KEY:
        seen = _seen(store, sa.and_(col(EventRow.access_key_id) == term, in_window))
        return Subject(label=term, account_id=None, identity=None, access_keys=(term,), regions=seen.regions,
                       identity_mode=identity_mode, enumeration_start=seen.first)
    if kind != IDENTITY:
        raise ValueError(f"not an ARN or access key ID: {term[:100]!r}")
    seen = _seen(store, sa.and_(sa.or_(col(EventRow.identity) == term, col(EventRow.arn) == term), in_window))
    usernames, named_keys = _callers([term], seen.used)
    return Subject(label=term, account_id=account_of(term), identity=term, identity_type=type_of_arn(term),
                   access_keys=tuple(dict.fromkeys(key for key, _ in seen.used if key)), usernames=usernames,
                   named_keys=named_keys, regions=seen.regions, identity_mode=identity_mode,
                   enumeration_start=seen.first)
