"""An identity's SES enumeration history from the store, for `/sesguard history <arn|name|ip> [days]`.

Answered from indexes (identity, arn, their last path segments, source IP, each with the event time),
in one pass over the matching rows: the database groups them by (call, address, region, identity,
account) and the few groups are added up here. A role polling SES every few minutes for months has tens
of thousands of rows: six queries over them took a second on SQLite, one pass takes a quarter of that.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

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
        return col(EventRow.source_ip) == str(ipaddress.ip_address(term))
    except ValueError:
        pass
    if term.startswith("arn:"):
        return sa.or_(col(EventRow.identity) == term, col(EventRow.arn) == term)
    name = name_of(term)
    return sa.or_(col(EventRow.identity_name) == name, col(EventRow.arn_name) == name)


def identity_history(store: Store, term: str, days: float = 90, now: datetime | None = None) -> IdentityHistory | None:
    """None when the store holds no matching call for the term within the last `days`."""
    term = term.strip()
    if not term:
        return None
    since = (now or utcnow()) - timedelta(days=days)
    where = sa.and_(term_filter(term), col(EventRow.event_time) >= since)
    history = IdentityHistory(term=term, days=days)
    grouping = (col(EventRow.event_name), col(EventRow.source_ip), col(EventRow.region), col(EventRow.identity),
                col(EventRow.account_id))
    with store.session() as session:
        groups = session.execute(  # SQLModel's select() takes at most four columns
            sa.select(*grouping, sa.func.count(), sa.func.min(EventRow.event_time), sa.func.max(EventRow.event_time))
            .where(where).group_by(*grouping)
        ).all()
        if not groups:
            return None
        calls: Counter[str] = Counter()
        source_ips: Counter[str] = Counter()
        regions: Counter[str] = Counter()
        for event_name, source_ip, region, _identity, _account, count, _first, _last in groups:
            calls[event_name] += count
            source_ips[source_ip] += count
            regions[region] += count
        history.event_count = sum(group[5] for group in groups)
        history.first_seen = _aware(min(group[6] for group in groups))
        history.last_seen = _aware(max(group[7] for group in groups))
        history.calls, history.source_ips, history.regions = _ranked(calls), _ranked(source_ips), _ranked(regions)
        history.identities = sorted({group[3] for group in groups})
        history.accounts = sorted({group[4] for group in groups})
        rows = session.exec(
            select(SignalRow)
            .where(col(SignalRow.identity).in_(history.identities), col(SignalRow.account_id).in_(history.accounts))
            .order_by(col(SignalRow.first_seen).desc())
            .limit(MAX_SIGNALS_SHOWN)
        ).all()
    history.signals = [
        SignalSummary(r.signal_id, r.account_id, r.identity, r.first_seen, r.severity, r.status) for r in rows
    ]
    return history


def _ranked(counts: Counter) -> dict[str, int]:
    """Most first, ties by value (the same order on every database, whatever its collation)."""
    ranked: Counter = Counter()
    for value, count in counts.items():
        ranked[value or "-"] += count
    return dict(sorted(ranked.items(), key=lambda item: (-item[1], item[0])))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
