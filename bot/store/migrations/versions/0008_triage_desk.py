"""the triage desk (SPEC §8): the App Home's open tabs; signals counted per suppression; suppression
reminders and each suppression's own duration; what learning learned silently, and its report; the daily
digests

Revision ID: 0008_triage_desk
Revises: 0007_investigations
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0008_triage_desk'
down_revision = '0007_investigations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('home_tabs',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('opened_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('triager', sa.Boolean(), nullable=False),
    sa.Column('published_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('published_digest', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )
    with op.batch_alter_table('home_tabs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_home_tabs_opened_at'), ['opened_at'], unique=False)

    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signals_suppression_id'), ['suppression_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_signals_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duration_days', sa.Float(), nullable=True))

    op.create_table('suppression_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suppression_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('sent_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('dropped', sa.Boolean(), nullable=False),
    sa.Column('dm_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('dm_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('extended_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('extended_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('suppression_id', 'expires_at', name='uq_suppression_reminders_expiry')
    )
    with op.batch_alter_table('suppression_reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_reminders_sent_at'), ['sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_suppression_reminders_suppression_id'), ['suppression_id'], unique=False)

    op.create_table('learned_identities',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('arn', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('first_seen', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('calls', sa.JSON(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('source_ips', sa.JSON(), nullable=False),
    sa.Column('root_caller', sa.Boolean(), nullable=False),
    sa.Column('long_term_keys_outside_console', sa.JSON(), nullable=False),
    sa.Column('all_from_console', sa.Boolean(), nullable=False),
    sa.Column('exercise_tool', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'identity')
    )
    op.create_table('learning_reports',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('observed_since', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('learning_ended_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('done_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('identities', sa.Integer(), nullable=False),
    sa.Column('slack_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('slack_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('account_id')
    )
    with op.batch_alter_table('learning_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_reports_done_at'), ['done_at'], unique=False)

    op.create_table('digests',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('period_end', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('posted_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('slack_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('slack_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('day')
    )


def downgrade() -> None:
    op.drop_table('digests')
    with op.batch_alter_table('learning_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_reports_done_at'))

    op.drop_table('learning_reports')
    op.drop_table('learned_identities')
    with op.batch_alter_table('suppression_reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_reminders_suppression_id'))
        batch_op.drop_index(batch_op.f('ix_suppression_reminders_sent_at'))

    op.drop_table('suppression_reminders')
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.drop_column('duration_days')

    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signals_created_at'))
        batch_op.drop_index(batch_op.f('ix_signals_suppression_id'))

    with op.batch_alter_table('home_tabs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_home_tabs_opened_at'))

    op.drop_table('home_tabs')
