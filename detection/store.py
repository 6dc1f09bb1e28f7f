"""The store: detection's tables (SQLModel on SQLAlchemy 2) and the `Store` every part of sesguard shares.

SQLite by default, PostgreSQL for deployments with separate web and worker processes. `detection` declares
only its own tables (here, `detection.pacing`, the S3 source's); each capability of the application keeps
its own beside its code, all on one metadata. The schema is owned by the one Alembic history in
`bot/store/migrations`, applied by `bot.store.schema.migrate()`: `detection` knows nothing of the
application's tables, so it does not build the schema itself. Every write that two processes could race on
is an idempotent insert on a unique key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import JSON, Column, Field, Session, SQLModel, col, create_engine, select

from detection import DEFAULT_DATABASE_URL
from detection.baseline import Baseline, Known, Tuning
from detection.record import CONTENT_FIELDS, Call
from detection.signals import Signal, Status
from detection.suppression import SuppressionRule, first_covering

_Row = TypeVar("_Row", bound=SQLModel)
_Item = TypeVar("_Item")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in and out, on SQLite (which keeps no zone) and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_time(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class _Numbered(Protocol):
    id: int | None


def row_id(row: _Numbered) -> int:
    """The id of a row read from the store (a numbered row has none only until its insert is flushed)."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} is not stored yet: it has no id")
    return row.id


def get_stored(session: Session, model: type[_Row], key: Any, **options: Any) -> _Row:
    """A row this process stored or read earlier in the work at hand; sesguard deletes none of these, so a row
    missing here is a broken invariant, said as such rather than as an AttributeError on None further on."""
    row = session.get(model, key, **options)
    if row is None:
        raise LookupError(f"{model.__name__} {key!r} is not in the store")
    return row


# Rows or keys a statement carries at most: far below every driver's limit of bound parameters.
BATCH = 500


def batches(items: list[_Item]) -> Iterator[list[_Item]]:
    """`items` in consecutive slices of at most BATCH."""
    for start in range(0, len(items), BATCH):
        yield items[start:start + BATCH]


def _rows_of_identities(session: Session, query: Any, model: Any, keys: Iterable[tuple[str, str]]) -> Iterator[Any]:
    """`query`'s rows of `model` whose (account_id, identity) is one of `keys`, a batch of keys a query."""
    for some in batches(sorted(keys)):
        yield from session.exec(query.where(sa.tuple_(col(model.account_id), col(model.identity)).in_(some)))


def table_of(model: type[SQLModel]) -> sa.Table:
    """The table a table model is mapped to, for Core statements on it (SQLModel does not declare `__table__`)."""
    table = sa.inspect(model).local_table
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not mapped to one table")
    return table


# ── detection ────────────────────────────────────────────────────────────────────────────────────────


class Scope(SQLModel, table=True):
    __tablename__ = "scopes"
    account_id: str = Field(primary_key=True)
    observed_since: datetime = utc_time()


class KnownIdentity(SQLModel, table=True):
    __tablename__ = "known_identities"
    account_id: str = Field(primary_key=True)
    identity: str = Field(primary_key=True)
    first_seen: datetime = utc_time()
    last_seen: datetime = utc_time()


class EventRow(SQLModel, table=True):
    """A matching call, kept for `/sesguard history` and de-duplication: each record once, by its eventID
    and its content (two different records under one eventID are two rows)."""

    __tablename__ = "events"
    # `/sesguard history` looks calls up by each of these columns within a time window: with the time in
    # the index, `history x 7` reads a week of a busy role's rows, not its whole past.
    __table_args__ = tuple(
        sa.Index(f"ix_events_{column}_time", column, "event_time")
        for column in ("identity", "arn", "identity_name", "arn_name", "source_ip")
    )
    event_id: str = Field(primary_key=True)
    # `Call.digest` of the record's content; empty in rows stored before records were told apart this way
    digest: str = Field(default="", primary_key=True)
    account_id: str = Field(index=True)
    identity: str
    identity_type: str
    arn: str
    # last path segments, lower-cased, so that `/sesguard history alice` finds arn:…:user/Alice by index
    identity_name: str
    arn_name: str
    event_time: datetime = utc_time(index=True)
    event_source: str
    event_name: str
    region: str
    source_ip: str
    user_agent: str
    access_key_id: str
    error_code: str
    from_console: bool
    signal_id: str | None = Field(default=None, index=True)


class SignalRow(SQLModel, table=True):
    __tablename__ = "signals"
    signal_id: str = Field(primary_key=True)
    account_id: str = Field(index=True)
    identity: str = Field(index=True)
    identity_type: str
    arn: str
    first_seen: datetime = utc_time(index=True)
    last_seen: datetime = utc_time()
    event_names: list = json_list()
    event_count: int = 0
    regions: list = json_list()
    source_ips: list = json_list()
    user_agents: list = json_list()
    access_key_ids: list = json_list()
    error_codes: list = json_list()
    event_ids: list = json_list()
    severity: str
    reasons: list = json_list()
    root_caller: bool = False
    long_term_keys_outside_console: list = json_list()
    all_from_console: bool = True
    exercise_tool: bool = False
    # calls an investigation found after the enumeration (SPEC §6); they make the signal `critical`
    follow_on_abuse: list = json_list()
    # a `Status`: new → (suppressed | escalated | contacting | confirmed | closed), see bot.triage.states
    status: str = Field(default=Status.NEW.value, index=True)
    suppression_id: int | None = Field(default=None, index=True)  # counts a suppression's hits
    created_at: datetime = utc_time(default_factory=utcnow, index=True)  # the figures' periods (SPEC §8)
    updated_at: datetime = utc_time(default_factory=utcnow)
    # Its alert in Slack and the notifier's claim on it are the application's: `bot.alerts.tables.AlertPost`.


class SignalHistory(SQLModel, table=True):
    """The audit trail of a signal: detection, every triage action, every answer."""

    __tablename__ = "signal_history"
    id: int | None = Field(default=None, primary_key=True)
    signal_id: str = Field(index=True)
    at: datetime = utc_time(default_factory=utcnow)
    actor: str  # a Slack user ID, or "sesguard"
    action: str
    status: str
    detail: str = ""


class SuppressionRow(SQLModel, table=True):
    __tablename__ = "suppressions"
    id: int | None = Field(default=None, primary_key=True)
    identity: str = Field(index=True)
    account_id: str | None = None
    source_cidr: str | None = None
    author: str
    reason: str
    created_at: datetime = utc_time(default_factory=utcnow)
    expires_at: datetime | None = utc_time(default=None, nullable=True)
    # what it was made for, in days (None: no expiry); an extension adds this again
    duration_days: float | None = None
    lifted_at: datetime | None = utc_time(default=None, nullable=True)
    lifted_by: str | None = None

    def as_rule(self) -> SuppressionRule:
        return SuppressionRule(row_id(self), self.identity, self.account_id, self.source_cidr, self.expires_at)


class LearnedIdentity(SQLModel, table=True):
    """An identity learned silently in an account (during its learning period, or a backfill) and the calls
    it made then, with the facts its severity is scored from: what the learning report (SPEC §8) shows."""

    __tablename__ = "learned_identities"
    account_id: str = Field(primary_key=True)
    identity: str = Field(primary_key=True)
    identity_type: str
    arn: str
    first_seen: datetime = utc_time()
    last_seen: datetime = utc_time()
    event_count: int = 0
    calls: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # event name → count
    regions: list = json_list()
    source_ips: list = json_list()
    root_caller: bool = False
    long_term_keys_outside_console: list = json_list()
    all_from_console: bool = True
    exercise_tool: bool = False

    def as_signal(self) -> Signal:
        """The signal it would have raised, for its severity and reasons."""
        return Signal(signal_id="", account_id=self.account_id, identity=self.identity,
                      identity_type=self.identity_type, arn=self.arn, first_seen=self.first_seen,
                      last_seen=self.last_seen, event_count=self.event_count, regions=list(self.regions),
                      root_caller=self.root_caller,
                      long_term_keys_outside_console=list(self.long_term_keys_outside_console),
                      all_from_console=self.all_from_console, exercise_tool=self.exercise_tool)


class AuditEntry(SQLModel, table=True):
    """Changes to configuration made from Slack (suppressions, identity mappings)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_time(default_factory=utcnow)
    actor: str
    action: str
    subject: str
    detail: str = ""


# ── conversions ──────────────────────────────────────────────────────────────────────────────────────

CALL_FIELDS = ("event_id", *CONTENT_FIELDS)
_SIGNAL_FIELDS = (
    "signal_id account_id identity identity_type arn first_seen last_seen event_names event_count regions "
    "source_ips user_agents access_key_ids error_codes event_ids root_caller long_term_keys_outside_console "
    "all_from_console exercise_tool follow_on_abuse status suppression_id"
).split()


def name_of(arn: str) -> str:
    """The last segment of an ARN, lower-cased: a user, role or session name ("root" for the root user)."""
    return arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].lower()


def signal_from_row(row: SignalRow) -> Signal:
    return Signal(**{name: getattr(row, name) for name in _SIGNAL_FIELDS})


def signal_values(signal: Signal) -> dict:
    values = {name: getattr(signal, name) for name in _SIGNAL_FIELDS}
    values.update(severity=signal.severity, reasons=signal.reasons)
    return values


def event_values(call: Call, signal_id: str | None) -> dict:
    return {
        "event_id": call.event_id, "digest": call.digest, "account_id": call.account_id, "identity": call.identity,
        "identity_type": call.identity_type, "arn": call.arn, "event_time": call.event_time,
        "identity_name": name_of(call.identity), "arn_name": name_of(call.arn),
        "event_source": call.event_source, "event_name": call.event_name, "region": call.region,
        "source_ip": call.source_ip, "user_agent": call.user_agent, "access_key_id": call.access_key_id,
        "error_code": call.error_code, "from_console": call.from_console, "signal_id": signal_id,
    }


# ── the store ────────────────────────────────────────────────────────────────────────────────────────


class Store:
    def __init__(self, url: str = DEFAULT_DATABASE_URL, **engine_options: Any):
        self.url = url
        try:
            sa.engine.make_url(url)
        except ValueError:  # e.g. a port that is not a number; the URL is not echoed: it may hold a password
            raise sa.exc.ArgumentError("could not parse the URL") from None
        if url.startswith("sqlite"):
            engine_options.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        else:
            engine_options.setdefault("pool_pre_ping", True)
        self.engine = create_engine(url, **engine_options)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def insert_ignoring_duplicates(self, session: Session, model: type[SQLModel], rows: list[dict]) -> int:
        """INSERT … ON CONFLICT DO NOTHING; the number of rows actually inserted."""
        if not rows:
            return 0
        statement = self.insert(model).on_conflict_do_nothing()
        return sum(session.exec(statement, params=some).rowcount or 0 for some in batches(rows))

    def insert(self, model: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT into the model's table in this database's dialect, which can say ON CONFLICT."""
        return (postgresql if self.is_postgres else sqlite).insert(table_of(model))

    def active_suppressions(self, now: datetime | None = None) -> list[SuppressionRow]:
        """Suppressions neither lifted nor expired, oldest first."""
        now = now or utcnow()
        with self.session() as session:
            return list(session.exec(
                select(SuppressionRow)
                .where(col(SuppressionRow.lifted_at).is_(None),
                       sa.or_(col(SuppressionRow.expires_at).is_(None), col(SuppressionRow.expires_at) > now))
                .order_by(col(SuppressionRow.id))
            ).all())

    def suppression_hits(self, ids: Iterable[int]) -> dict[int, int]:
        """How many signals each suppression covered (kept out of the channel, or suppressed from the alert),
        counted in SQL over the signals' indexed `suppression_id`."""
        ids = list(ids)
        if not ids:
            return {}
        with self.session() as session:
            rows = session.exec(
                select(SignalRow.suppression_id, sa.func.count()).where(col(SignalRow.suppression_id).in_(ids))
                .group_by(col(SignalRow.suppression_id))).all()
        return {suppression_id: count for suppression_id, count in rows if suppression_id is not None}  # IN: never NULL

    # ── detection state ───────────────────────────────────────────────────────────────────────────

    def new_calls(self, calls: Iterable[Call]) -> list[Call]:
        """The calls not stored yet: each record is processed once. A record under a stored eventID but
        with another content is new (damaged or forged input): both count, whichever came first."""
        unique = list(dict.fromkeys(calls))
        stored: set[Call] = set()
        ids = list({call.event_id for call in unique})
        table = table_of(EventRow)
        columns = [table.c[name] for name in CALL_FIELDS]
        with self.engine.connect() as connection:  # Core: the poll asks this for every account and pass
            for some in batches(ids):
                rows = connection.execute(sa.select(*columns).where(table.c.event_id.in_(some)))
                stored.update(Call(**row._mapping) for row in rows)
        return [call for call in unique if call not in stored]

    def load_baseline(self, calls: list[Call], tuning: Tuning) -> Baseline:
        """The part of the state the calls touch: their scopes, identities and latest signals."""
        baseline = Baseline(tuning)
        keys = {(call.account_id, call.identity) for call in calls}
        accounts = {account for account, _ in keys}
        with self.session() as session:
            for scope in session.exec(select(Scope).where(col(Scope.account_id).in_(accounts))):
                baseline.scopes[scope.account_id] = scope.observed_since
            for known in _rows_of_identities(session, select(KnownIdentity), KnownIdentity, keys):
                baseline.known[(known.account_id, known.identity)] = Known(known.first_seen, known.last_seen)
            # each identity's latest signal (an identity has few: one per quiet period)
            for row in _rows_of_identities(session, select(SignalRow).order_by(col(SignalRow.first_seen)),
                                           SignalRow, keys):
                baseline.latest_signals[(row.account_id, row.identity)] = signal_from_row(row)
        return baseline

    def set_observed_since(self, account_id: str, moment: datetime) -> None:
        """The worker's start of observation: the start of the backfilled history (kept if already set)."""
        with self.session() as session:
            self.insert_ignoring_duplicates(session, Scope, [{"account_id": account_id, "observed_since": moment}])
            session.commit()

    def save_detection(self, baseline: Baseline, calls: list[Call], signals: list[Signal],
                       now: datetime | None = None) -> list[Signal]:
        """Store calls, learned identities and signals in one transaction; returns the signals new to the store.

        New signals covered by an active suppression are stored as `suppressed` (never posted).
        """
        now = now or utcnow()
        signal_of = {call: s.signal_id for s in signals for call in s.joined}
        keys = {(call.account_id, call.identity) for call in calls}
        with self.session() as session:
            in_force = select(SuppressionRow).where(col(SuppressionRow.lifted_at).is_(None))
            rules = [row.as_rule() for row in session.exec(in_force)]
            self.insert_ignoring_duplicates(
                session, Scope,
                [{"account_id": a, "observed_since": t} for a, t in baseline.scopes.items()
                 if a in {k[0] for k in keys}],
            )
            # the rows in key order, locked in that order by every process (no cycle of waits)
            ordered = select(KnownIdentity).order_by(col(KnownIdentity.account_id), col(KnownIdentity.identity))
            known_rows = {(row.account_id, row.identity): row for row in _rows_of_identities(
                session, ordered.with_for_update() if self.is_postgres else ordered, KnownIdentity, keys)}
            for key in sorted(keys):
                known = baseline.known[key]
                known_row = known_rows.get(key)
                if known_row is None:
                    self.insert_ignoring_duplicates(session, KnownIdentity, [
                        {"account_id": key[0], "identity": key[1],
                         "first_seen": known.first_seen, "last_seen": known.last_seen}])
                else:
                    known_row.first_seen = (known.first_seen if known.first_seen > known_row.last_seen
                                            else min(known_row.first_seen, known.first_seen))
                    known_row.last_seen = max(known_row.last_seen, known.last_seen)
                    session.add(known_row)
            self.insert_ignoring_duplicates(
                session, EventRow, [event_values(c, signal_of.get(c)) for c in calls])
            self._save_learned(session, baseline.learned.values())
            created: list[Signal] = []
            stored_rows: dict[str, SignalRow] = {}
            for some in batches(sorted({signal.signal_id for signal in signals})):
                query = select(SignalRow).where(col(SignalRow.signal_id).in_(some)).order_by(col(SignalRow.signal_id))
                stored_rows.update((row.signal_id, row) for row in session.exec(
                    query.with_for_update() if self.is_postgres else query))
            for signal in signals:
                row = stored_rows.get(signal.signal_id)
                if row is None:
                    covering = first_covering(rules, signal, now)
                    if covering is not None:
                        signal.status, signal.suppression_id = Status.SUPPRESSED.value, covering.id
                    inserted = self.insert_ignoring_duplicates(session, SignalRow, [signal_values(signal)])
                    if inserted:
                        created.append(signal)
                        session.add(SignalHistory(
                            signal_id=signal.signal_id, actor="sesguard", action="detected", status=signal.status,
                            detail=f"suppressed by suppression #{covering.id}" if covering else ""))
                else:
                    # Later calls grow the signal; what others decided about it stays as stored: its triage
                    # status and suppression (Slack), and the follow-on abuse an investigation found (which
                    # the severity and reasons are computed from).
                    stored = signal_from_row(row)
                    signal.status, signal.suppression_id = stored.status, stored.suppression_id
                    signal.follow_on_abuse = stored.follow_on_abuse
                    for field_name, value in signal_values(signal).items():
                        setattr(row, field_name, value)
                    row.updated_at = now
                    session.add(row)
            session.commit()
        return created


    def _save_learned(self, session: Session, learned: Iterable[Signal]) -> None:
        """Add this batch's silently learned calls to what each identity was learned with before."""
        for batch in learned:
            key = (batch.account_id, batch.identity)
            calls: dict[str, int] = {}
            for call in batch.joined:
                calls[call.event_name] = calls.get(call.event_name, 0) + 1
            self.insert_ignoring_duplicates(session, LearnedIdentity, [{
                "account_id": key[0], "identity": key[1], "identity_type": batch.identity_type, "arn": batch.arn,
                "first_seen": batch.first_seen, "last_seen": batch.last_seen, "event_count": 0, "calls": {},
                "regions": [], "source_ips": [], "root_caller": False, "long_term_keys_outside_console": [],
                "all_from_console": True, "exercise_tool": False}])
            row = get_stored(session, LearnedIdentity, key, with_for_update=self.is_postgres, populate_existing=True)
            if batch.first_seen < row.first_seen or not row.event_count:
                row.identity_type, row.arn = batch.identity_type, batch.arn
            row.first_seen, row.last_seen = min(row.first_seen, batch.first_seen), max(row.last_seen, batch.last_seen)
            row.event_count += len(batch.joined)
            row.calls = {name: row.calls.get(name, 0) + calls.get(name, 0) for name in sorted({*row.calls, *calls})}
            row.regions = sorted({*row.regions, *batch.regions})
            row.source_ips = sorted({*row.source_ips, *batch.source_ips})[:50]
            row.root_caller = row.root_caller or batch.root_caller
            row.long_term_keys_outside_console = sorted({*row.long_term_keys_outside_console,
                                                         *batch.long_term_keys_outside_console})
            row.all_from_console = row.all_from_console and batch.all_from_console
            row.exercise_tool = row.exercise_tool or batch.exercise_tool
            session.add(row)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
