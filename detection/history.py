"""An identity's SES enumeration history from the store, for `/sesguard history <arn|name|ip> [days]`.

Answered from indexes (identity, arn, their last path segments, source IP), then aggregated in the
database, so that a store of millions of events answers within Slack's patience.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlmodel import select

from detection.store import EventRow, SignalRow, Store, name_of, utcnow

MAX_SIGNALS_SHOWN = 20


@dataclass
class SignalSummary:
    signal_id: str
    account_id: str
    identity: str
    first_seen: datetime
    severity: str
    status: str


@dataclass
class IdentityHistory:
    term: str
    days: float
    identities: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    event_count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    calls: dict[str, int] = field(default_factory=dict)  # API → count, most first
    source_ips: dict[str, int] = field(default_factory=dict)
    regions: dict[str, int] = field(default_factory=dict)
    signals: list[SignalSummary] = field(default_factory=list)


def term_filter(term: str) -> sa.ColumnElement[bool]:
    """What the term names: an IP address, a full ARN (identity or caller), or a user/role/session name."""
    try:
        return EventRow.source_ip == str(ipaddress.ip_address(term))
    except ValueError:
        pass
    if term.startswith("arn:"):
        return sa.or_(EventRow.identity == term, EventRow.arn == term)
    name = name_of(term)
    return sa.or_(EventRow.identity_name == name, EventRow.arn_name == name)


def identity_history(store: Store, term: str, days: float = 90, now: datetime | None = None) -> IdentityHistory | None:
    """None when the store holds no matching call for the term within the last `days`."""
    term = term.strip()
    if not term:
        return None
    since = (now or utcnow()) - timedelta(days=days)
    where = sa.and_(term_filter(term), EventRow.event_time >= since)
    history = IdentityHistory(term=term, days=days)
    with store.session() as session:
        count, first, last = session.exec(
            select(sa.func.count(), sa.func.min(EventRow.event_time), sa.func.max(EventRow.event_time)).where(where)
        ).one()
        if not count:
            return None
        history.event_count = count
        history.first_seen = _aware(first)
        history.last_seen = _aware(last)
        history.calls = _counts(session, EventRow.event_name, where)
        history.source_ips = _counts(session, EventRow.source_ip, where)
        history.regions = _counts(session, EventRow.region, where)
        history.identities = sorted(session.exec(select(EventRow.identity).where(where).distinct()).all())
        history.accounts = sorted(session.exec(select(EventRow.account_id).where(where).distinct()).all())
        rows = session.exec(
            select(SignalRow)
            .where(SignalRow.identity.in_(history.identities), SignalRow.account_id.in_(history.accounts))
            .order_by(SignalRow.first_seen.desc())
            .limit(MAX_SIGNALS_SHOWN)
        ).all()
    history.signals = [
        SignalSummary(r.signal_id, r.account_id, r.identity, r.first_seen, r.severity, r.status) for r in rows
    ]
    return history


def _counts(session, column, where) -> dict[str, int]:
    rows = session.exec(
        select(column, sa.func.count()).where(where).group_by(column).order_by(sa.func.count().desc(), column)
    ).all()
    return {value or "-": count for value, count in rows}


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
