"""The schema: every capability's tables on one metadata, and the one Alembic history that builds them
(`bot/store/migrations`), applied by `migrate()` at every process's start-up and by `sesguard scan --db`.

The history lives here, not in `detection`: it creates the application's tables too (alert posts, contacts,
Slack requests, the Home tab, …), and `detection` knows nothing of those. `detection` only declares its
own tables; whoever opens a store for it migrates that store through this module. Every table module is
imported here, so that the metadata the history is compared with (autogenerate, the schema test) is whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import bot.alerts.tables  # noqa: F401
import bot.contact.tables  # noqa: F401
import bot.contain.tables  # noqa: F401
import bot.context.tables  # noqa: F401
import bot.desk.digest.daily  # noqa: F401
import bot.desk.home.tables  # noqa: F401
import bot.desk.learning.report  # noqa: F401
import bot.investigate.tables  # noqa: F401
import bot.page.tables  # noqa: F401
import bot.slack.tables  # noqa: F401
import bot.store.lease  # noqa: F401
import bot.triage.suppressions.tables  # noqa: F401
import bot.worker.tables  # noqa: F401
import detection.pacing  # noqa: F401
import detection.sources.s3_trail  # noqa: F401
from detection.store import Store

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# PostgreSQL's advisory lock that makes migrations take turns across processes
MIGRATION_LOCK = 7290113


def migration_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the history, on `connection` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(store: Store) -> None:
    """Bring the store's schema to the newest migration (idempotent; safe from several processes)."""
    with _sqlite_migration_lock(store), store.engine.begin() as connection:
        if store.is_postgres:  # two processes starting at once must not both create the tables
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        command.upgrade(migration_config(connection), "head")


@contextmanager
def _sqlite_migration_lock(store: Store) -> Iterator[None]:
    """SQLite has no advisory lock: processes starting together (`serve` and the worker) take
    turns on a lock file beside the database, or the second one fails with "table … already exists"."""
    database = store.engine.url.database
    if store.is_postgres or not database or database == ":memory:":
        yield
        return
    import fcntl

    try:
        lock_file = open(f"{database}.migrate-lock", "a")
    except OSError:  # a folder that is missing or read-only: SQLite itself says so, in one line
        lock_file = None
    if lock_file is None:
        yield
        return
    with lock_file as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
