"""Whose activity an investigation reads (SPEC §6): a signal's identity, or an ARN or access key asked
about, completed with what the store saw it use (access keys, session names, regions, the first
enumeration call).

A role is the identity of its sessions, but LookupEvents knows sessions only, by their name or key: the
stored enumeration calls say which sessions to ask for.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlmodel import select

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


def _names(arns: list[str], identity_type: str) -> tuple[str, ...]:
    names: list[str] = []
    for arn in arns:
        name = username_of(arn, identity_type or type_of_arn(arn))
        if name and name not in names:
            names.append(name)
    return tuple(names[:MAX_USERNAMES])


def for_signal(store: Store, signal: SignalRow, identity_mode: str) -> Subject:
    """The identity of a stored signal: its keys, the names of the sessions that enumerated, its regions."""
    with store.session() as session:
        callers = list(session.exec(
            select(EventRow.arn).where(EventRow.signal_id == signal.signal_id).group_by(EventRow.arn)
            .order_by(sa.func.min(EventRow.event_time)).limit(MAX_USERNAMES)
        ).all())
    return Subject(
        label=signal.identity, account_id=signal.account_id, identity=signal.identity,
        identity_type=signal.identity_type, access_keys=tuple(signal.access_key_ids),
        usernames=_names([signal.arn, *callers], signal.identity_type), regions=tuple(signal.regions),
        identity_mode=identity_mode, enumeration_start=signal.first_seen,
        enumeration_event_ids=frozenset(signal.event_ids),
    )


def for_term(store: Store, term: str, window: Window, identity_mode: str) -> Subject:
    """An ARN or access key asked about (`kind_of` says which): what the store saw it use in the window."""
    kind = kind_of(term)
    in_window = EventRow.event_time.between(window.start, window.end)
    if kind == KEY:
        seen = _seen(store, sa.and_(EventRow.access_key_id == term, in_window))
        return Subject(label=term, account_id=None, identity=None, access_keys=(term,), regions=seen.regions,
                       identity_mode=identity_mode, enumeration_start=seen.first)
    if kind != IDENTITY:
        raise ValueError(f"not an ARN or access key ID: {term[:100]!r}")
    seen = _seen(store, sa.and_(sa.or_(EventRow.identity == term, EventRow.arn == term), in_window))
    identity_type = type_of_arn(term)
    return Subject(label=term, account_id=account_of(term), identity=term, identity_type=identity_type,
                   access_keys=seen.keys, usernames=_names([term, *seen.callers], identity_type),
                   regions=seen.regions, identity_mode=identity_mode, enumeration_start=seen.first)


@dataclass(frozen=True)
class Seen:
    """What the stored enumeration calls of an identity or key show it used."""

    keys: tuple[str, ...]
    callers: tuple[str, ...]  # caller ARNs (role sessions), first used first
    regions: tuple[str, ...]
    first: datetime | None  # its first stored enumeration call


def _seen(store: Store, where: sa.ColumnElement[bool]) -> Seen:
    with store.session() as session:
        rows = session.exec(
            select(EventRow.access_key_id, EventRow.arn, EventRow.region, sa.func.min(EventRow.event_time))
            .where(where).group_by(EventRow.access_key_id, EventRow.arn, EventRow.region)
            .order_by(sa.func.min(EventRow.event_time))
        ).all()
    first = min((moment for *_, moment in rows), default=None)
    return Seen(
        keys=tuple(dict.fromkeys(key for key, _, _, _ in rows if key)),
        callers=tuple(dict.fromkeys(arn for _, arn, _, _ in rows if arn)),
        regions=tuple(sorted({region for _, _, region, _ in rows if region})),
        # SQLite hands aggregates back without their zone
        first=first.replace(tzinfo=timezone.utc) if first is not None and first.tzinfo is None else first,
    )
