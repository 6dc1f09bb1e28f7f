"""alert posts: a signal's alert in Slack and the notifier's claim on it move out of `signals` into the
alerts' own table (detection's table keeps detection's columns only)

Revision ID: 0011_alert_posts
Revises: 0010_sql_engines
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0011_alert_posts'
down_revision = '0010_sql_engines'
branch_labels = None
depends_on = None

# alert_posts' column ← the signals' column it was
MOVED = {
    'slack_channel': 'slack_channel', 'slack_ts': 'slack_ts', 'posted_at': 'posted_at',
    'claimed_by': 'post_claimed_by', 'claimed_until': 'post_claimed_until', 'attempts': 'post_attempts',
    'failures': 'post_failures', 'error': 'post_error', 'retry_at': 'post_retry_at',
}
# A signal the notifier never touched has no row: its defaults say no more than a missing row does.
TOUCHED = ("slack_ts IS NOT NULL OR posted_at IS NOT NULL OR post_claimed_by IS NOT NULL "
           "OR post_claimed_until IS NOT NULL OR post_attempts <> 0 OR post_failures <> 0 "
           "OR post_error IS NOT NULL OR post_retry_at IS NOT NULL")


def upgrade() -> None:
    op.create_table('alert_posts',
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('slack_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('slack_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('posted_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('retry_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('signal_id')
    )
    # Posted alerts stay posted, claims and set-aside alerts stay as they were: copied as stored.
    op.execute(f"INSERT INTO alert_posts (signal_id, {', '.join(MOVED)}) "
               f"SELECT signal_id, {', '.join(MOVED.values())} FROM signals WHERE {TOUCHED}")
    with op.batch_alter_table('signals', schema=None) as batch_op:
        for column in reversed(MOVED.values()):
            batch_op.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slack_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('slack_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('posted_at', detection.store.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('post_claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('post_claimed_until', detection.store.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('post_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('post_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('post_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('post_retry_at', detection.store.UTCDateTime(timezone=True), nullable=True))
    for new, old in MOVED.items():
        op.execute(f"UPDATE signals SET {old} = (SELECT alert_posts.{new} FROM alert_posts "
                   f"WHERE alert_posts.signal_id = signals.signal_id) "
                   f"WHERE EXISTS (SELECT 1 FROM alert_posts WHERE alert_posts.signal_id = signals.signal_id)")
    op.drop_table('alert_posts')
