"""The schema (bot/store/schema.py and its one migration history), on SQLite and PostgreSQL: the history builds
exactly the tables the models describe, migrating twice changes nothing, and upgrades keep what deployments
stored before them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, func, select

from bot.alerts.tables import AlertPost
from bot.store.schema import migrate, migration_config
from detection.baseline import Tuning
from detection.record import to_call
from detection.scan import detect
from detection.store import EventRow, SignalRow, Store, UTCDateTime, event_values, utcnow
from tests.support import records as r

ALICE, MALLORY = r.iam_user("alice"), r.iam_user("mallory")


def run(store, recs):
    return detect([to_call(rec) for rec in recs], Tuning(), store)


def count(store, model) -> int:
    with store.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def go_to(store: Store, revision: str, down: bool = False) -> None:
    with store.engine.begin() as connection:
        (command.downgrade if down else command.upgrade)(migration_config(connection), revision)


@pytest.fixture
def blank_store(blank_url):
    """A store with no schema yet, on either database."""
    store = Store(blank_url)
    yield store
    store.engine.dispose()


def test_migrations_build_exactly_the_schema_the_models_describe(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_migrate_is_idempotent(store):
    run(store, [r.record(ALICE)])
    migrate(store)
    migrate(Store(store.url))
    assert count(store, EventRow) == 1


def test_events_stored_before_records_were_told_apart_are_still_known(store):
    """Rows written before the digest joined the key (one row an eventID) are recognised by their content
    after the upgrade: the worker's look-back re-reads them, and nothing is processed twice."""
    run(store, [r.record(ALICE, event_id="kept"), r.record(ALICE, event_id="kept", region="eu-west-1")])
    with store.engine.begin() as connection:
        command.downgrade(migration_config(connection), "0003_pages")  # one row an eventID again: one record stays
        assert connection.execute(sa.text("SELECT count(*) FROM events WHERE event_id = 'kept'")).scalar() == 1
        old = {k: v for k, v in event_values(to_call(r.record(ALICE, event_id="old")), None).items() if k != "digest"}
        connection.execute(sa.table("events", *map(sa.column, old)).insert().values(**old))
    migrate(store)
    with store.session() as session:
        assert session.get(EventRow, ("old", "")).identity == ALICE["arn"]
    assert store.new_calls([to_call(r.record(ALICE, event_id="old"))]) == []
    assert len(store.new_calls([to_call(r.record(ALICE, event_id="old", region="eu-west-1"))])) == 1


# ── 0011: the alerts' posts move out of detection's `signals` ───────────────────────────────────────

OLD_SIGNAL_COLUMNS = ("signal_id", "account_id", "identity", "identity_type", "arn", "severity", "status")
OLD_POST_COLUMNS = ("slack_channel", "slack_ts", "post_claimed_by", "post_attempts", "post_failures", "post_error")
OLD_POST_TIMES = ("first_seen", "last_seen", "created_at", "updated_at", "posted_at", "post_claimed_until",
                  "post_retry_at")


def _old_signal(signal_id: str, **values) -> dict:
    moment = utcnow() - timedelta(hours=1)
    arn = f"arn:aws:iam::111122223333:user/{signal_id}"
    return {"signal_id": signal_id, "account_id": "111122223333", "identity": arn, "identity_type": "IAMUser",
            "arn": arn, "severity": "medium",
            "status": "new", "slack_channel": None, "slack_ts": None, "post_claimed_by": None, "post_attempts": 0,
            "post_failures": 0, "post_error": None, "first_seen": moment, "last_seen": moment, "created_at": moment,
            "updated_at": moment, "posted_at": None, "post_claimed_until": None, "post_retry_at": None, **values}


def test_upgrading_keeps_posted_claimed_and_set_aside_alerts(blank_store):
    """A deployment at 0010 with alerts in every outbox state: after the upgrade each is where it was, in
    `alert_posts`, and `signals` has none of those columns any more; a signal never touched gets no row."""
    go_to(blank_store, "0010_sql_engines")
    posted_at, claimed_until, retry_at = (utcnow() - timedelta(minutes=n) for n in (30, -2, -5))
    old = [
        _old_signal("posted", slack_channel="C0ALERTS", slack_ts="1700000000.000100", posted_at=posted_at,
                    post_attempts=1),
        _old_signal("claimed", post_claimed_by="host:12:abcd", post_claimed_until=claimed_until, post_attempts=2),
        _old_signal("set-aside", post_failures=3, post_error="HTTP 200 invalid_blocks", post_retry_at=retry_at,
                    post_attempts=1),
        _old_signal("waiting"),
    ]
    signals = sa.table("signals", *map(sa.column, OLD_SIGNAL_COLUMNS + OLD_POST_COLUMNS),
                       *(sa.column(name, UTCDateTime()) for name in OLD_POST_TIMES),
                       *(sa.column(name, sa.JSON()) for name in ("event_names", "regions", "source_ips",
                                                                 "user_agents", "access_key_ids", "error_codes",
                                                                 "event_ids", "reasons",
                                                                 "long_term_keys_outside_console",
                                                                 "follow_on_abuse")),
                       sa.column("event_count"), sa.column("root_caller"), sa.column("all_from_console"),
                       sa.column("exercise_tool"))
    lists = dict.fromkeys(("event_names", "regions", "source_ips", "user_agents", "access_key_ids", "error_codes",
                           "event_ids", "reasons", "long_term_keys_outside_console", "follow_on_abuse"), [])
    with blank_store.engine.begin() as connection:
        connection.execute(signals.insert(), [{**row, **lists, "event_count": 1, "root_caller": False,
                                               "all_from_console": False, "exercise_tool": False} for row in old])

    migrate(blank_store)

    with blank_store.session() as session:
        posts = {post.signal_id: post for post in session.exec(select(AlertPost))}
        assert sorted(row.signal_id for row in session.exec(select(SignalRow))) == sorted(s["signal_id"] for s in old)
    assert sorted(posts) == ["claimed", "posted", "set-aside"]
    assert (posts["posted"].slack_channel, posts["posted"].slack_ts, posts["posted"].posted_at,
            posts["posted"].attempts) == ("C0ALERTS", "1700000000.000100", posted_at, 1)
    assert (posts["claimed"].claimed_by, posts["claimed"].claimed_until, posts["claimed"].attempts,
            posts["claimed"].slack_ts) == ("host:12:abcd", claimed_until, 2, None)
    assert (posts["set-aside"].failures, posts["set-aside"].error, posts["set-aside"].retry_at) == (
        3, "HTTP 200 invalid_blocks", retry_at)
    left = {column["name"] for column in sa.inspect(blank_store.engine).get_columns("signals")}
    assert left.isdisjoint(OLD_POST_COLUMNS + ("posted_at", "post_claimed_until", "post_retry_at"))


def test_downgrading_puts_the_posts_back_on_the_signals(store):
    run(store, [r.record(ALICE), r.record(MALLORY, time=r.at(days=10))])
    with store.session() as session:
        (signal_id,) = session.exec(select(SignalRow.signal_id)).all()
        session.add(AlertPost(signal_id=signal_id, slack_channel="C0ALERTS", slack_ts="1.5", attempts=1))
        session.commit()
    go_to(store, "0010_sql_engines", down=True)
    with store.engine.connect() as connection:
        row = connection.execute(sa.text("SELECT slack_channel, slack_ts, post_attempts FROM signals")).one()
    assert tuple(row) == ("C0ALERTS", "1.5", 1)
    migrate(store)
    with store.session() as session:
        assert session.get(AlertPost, signal_id).slack_ts == "1.5"
