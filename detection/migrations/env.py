"""Alembic environment: runs on the connection `Store.migrate()` hands over (no alembic.ini needed)."""

from alembic import context
from sqlmodel import SQLModel

# Tables register themselves on SQLModel.metadata when their module is imported: detection's here, the
# S3 source's (`detection.sources.s3_trail`) and the application's (`bot.slack.tables`, `bot.worker.tables`)
# where they are used. The revisions carry their own DDL, so
# `Store.migrate()` needs none of them imported; autogenerate wants them all.
import detection.pacing  # noqa: F401
import detection.store

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: DATABASE_URL or the default file
    import os

    from detection.store import Store

    engine = Store(os.environ.get("DATABASE_URL", detection.store.DEFAULT_DATABASE_URL)).engine
    connection = engine.connect()

context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
