"""Alembic environment: runs on the connection `Store.migrate()` hands over (no alembic.ini needed)."""

from alembic import context
from sqlmodel import SQLModel

import detection.store  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: DATABASE_URL or the default file
    from detection.store import Store
    import os

    engine = Store(os.environ.get("DATABASE_URL", detection.store.DEFAULT_DATABASE_URL)).engine
    connection = engine.connect()

context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
