"""events: two different records under one eventID are two rows (the content's digest joins the key)

Revision ID: 0004_event_digests
Revises: 0003_pages
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0004_event_digests'
down_revision = '0003_pages'
branch_labels = None
depends_on = None


def _text_column(name: str, **kw) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=False, **kw)


def _sqlite() -> bool:
    """SQLite has no ALTER for a primary key: the table is rebuilt instead."""
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # Rows stored before keep an empty digest: the store compares contents, so they need none.
    op.add_column("events", _text_column("digest", server_default=""))
    if _sqlite():
        key = [_text_column("event_id", primary_key=True), _text_column("digest", server_default="", primary_key=True)]
        with op.batch_alter_table("events", recreate="always", reflect_args=tuple(key)):
            pass
    else:
        op.drop_constraint("events_pkey", "events", type_="primary")
        op.create_primary_key("events_pkey", "events", ["event_id", "digest"])


def downgrade() -> None:
    # Records that only the digest tells apart cannot share one eventID again: one row an eventID stays.
    op.execute(sa.text("DELETE FROM events WHERE EXISTS (SELECT 1 FROM events AS kept "
                       "WHERE kept.event_id = events.event_id AND kept.digest < events.digest)"))
    if _sqlite():
        with op.batch_alter_table("events", recreate="always") as batch_op:
            batch_op.drop_column("digest")
    else:
        op.drop_constraint("events_pkey", "events", type_="primary")
        op.create_primary_key("events_pkey", "events", ["event_id"])
        op.drop_column("events", "digest")
