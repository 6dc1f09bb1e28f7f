"""investigations: one row per investigation of a signal and window; the follow-on abuse of a signal

Revision ID: 0007_investigations
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0007_investigations'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_on_abuse', sa.JSON(), nullable=False, server_default='[]'))

    op.create_table('investigations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('window_start', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_end', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('requested_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('escalation_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('summary_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('finished_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('signal_id', 'window_start', 'window_end', name='uq_investigations_signal_window')
    )
    with op.batch_alter_table('investigations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investigations_signal_id'), ['signal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_investigations_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('investigations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_investigations_state'))
        batch_op.drop_index(batch_op.f('ix_investigations_signal_id'))

    op.drop_table('investigations')
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_column('follow_on_abuse')
