"""queue_state: what the SQS consumers last learned of their queue (SPEC §7)

Revision ID: 0009_org_scale
Revises: 0008_triage_desk
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0009_org_scale'
down_revision = '0008_triage_desk'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queue_state',
    sa.Column('queue_url', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('backlog', sa.Integer(), nullable=True),
    sa.Column('in_flight', sa.Integer(), nullable=True),
    sa.Column('attributes_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('oldest_received_seconds', sa.Float(), nullable=True),
    sa.Column('received_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unusable', sa.Integer(), nullable=False),
    sa.Column('ignored', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('queue_url')
    )


def downgrade() -> None:
    op.drop_table('queue_state')
