"""triage context: the facts gathered per alert, the lookups they came from, the AWS IP ranges in use

Revision ID: 0012_triage_context
Revises: 0011_alert_posts
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0012_triage_context'
down_revision = '0011_alert_posts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('triage_contexts',
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('requested_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=True),
    sa.Column('owner_slack_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('unknown', sa.Integer(), nullable=False),
    sa.Column('gathered_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('signal_id')
    )
    with op.batch_alter_table('triage_contexts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_triage_contexts_state'), ['state'], unique=False)

    op.create_table('context_lookups',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('answer', sa.JSON(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('fetched_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('context_lookups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_context_lookups_fetched_at'), ['fetched_at'], unique=False)

    op.create_table('aws_ip_ranges',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sync_token', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('create_date', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('stored_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('aws_ip_ranges')
    with op.batch_alter_table('context_lookups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_context_lookups_fetched_at'))
    op.drop_table('context_lookups')
    with op.batch_alter_table('triage_contexts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triage_contexts_state'))
    op.drop_table('triage_contexts')
