"""health: since when each place awaits a first poll, places no longer polled, delivery to Slack

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('poll_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting_since', detection.store.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retired_at', detection.store.UTCDateTime(timezone=True), nullable=True))
    # A place polled before waits since its last sign of life; the first check then judges it as it is.
    poll_state = sa.table('poll_state', *(sa.column(name, detection.store.UTCDateTime(timezone=True))
                                          for name in ('waiting_since', 'last_success_at', 'last_error_at')))
    op.execute(poll_state.update().values(waiting_since=sa.func.coalesce(
        poll_state.c.last_success_at, poll_state.c.last_error_at,
        sa.bindparam('now', detection.store.utcnow(), type_=detection.store.UTCDateTime(timezone=True)))))
    with op.batch_alter_table('poll_state', schema=None) as batch_op:
        batch_op.alter_column('waiting_since', existing_type=detection.store.UTCDateTime(timezone=True),
                              nullable=False)

    op.create_table('delivery_state',
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_pass_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('stopped_by_transient', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('channel')
    )


def downgrade() -> None:
    op.drop_table('delivery_state')
    with op.batch_alter_table('poll_state', schema=None) as batch_op:
        batch_op.drop_column('retired_at')
        batch_op.drop_column('waiting_since')
