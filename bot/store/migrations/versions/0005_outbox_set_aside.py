"""outbox: alerts Slack refuses (or that cannot be rendered) are set aside and retried with backoff

Revision ID: 0005
Revises: 0004_event_digests
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0005'
down_revision = '0004_event_digests'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('post_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('post_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('post_retry_at', detection.store.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_column('post_retry_at')
        batch_op.drop_column('post_error')
        batch_op.drop_column('post_failures')
