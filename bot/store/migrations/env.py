"""Alembic environment: runs on the connection `bot.store.schema.migrate()` hands over (no alembic.ini needed).

`bot.store.schema` imports every capability's tables, so that autogenerate compares the history with the
whole metadata. The revisions carry their own DDL: upgrading needs none of the models.
"""

from alembic import context
from sqlmodel import SQLModel

import bot.store.schema  # noqa: F401

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: DATABASE_URL or the default file
    import os

    from detection import DEFAULT_DATABASE_URL
    from detection.store import Store

    engine = Store(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)).engine
    connection = engine.connect()

context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
