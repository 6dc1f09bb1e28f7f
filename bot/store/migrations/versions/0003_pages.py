"""the pager's outbox (pages) and containment attempts

Revision ID: 0003_pages
Revises: 0001
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0003_pages'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('history_id', sa.Integer(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event_action', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('done_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('history_id')
    )
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pages_outcome'), ['outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_pages_signal_id'), ['signal_id'], unique=False)

    op.create_table('containment_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('requested_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('containment_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_containment_attempts_signal_id'), ['signal_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('containment_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_containment_attempts_signal_id'))

    op.drop_table('containment_attempts')
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pages_signal_id'))
        batch_op.drop_index(batch_op.f('ix_pages_outcome'))

    op.drop_table('pages')
