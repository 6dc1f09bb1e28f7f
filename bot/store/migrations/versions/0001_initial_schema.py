"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('slack_user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('asked_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('asked_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadline', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dm_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('dm_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('answered_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_deadline'), ['deadline'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_signal_id'), ['signal_id'], unique=False)

    op.create_table('events',
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('arn', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('arn_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event_time', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source_ip', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('access_key_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('from_console', sa.Boolean(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_event_time'), ['event_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_signal_id'), ['signal_id'], unique=False)
        for column in ('identity', 'arn', 'identity_name', 'arn_name', 'source_ip'):  # history look-ups
            batch_op.create_index(f'ix_events_{column}_time', [column, 'event_time'], unique=False)

    op.create_table('identity_mappings',
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('slack_user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('set_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('set_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('identity')
    )
    op.create_table('known_identities',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('first_seen', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'identity')
    )
    op.create_table('leases',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('expires_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('slack_requests',
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('received_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('signature')
    )
    with op.batch_alter_table('slack_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_requests_received_at'), ['received_at'], unique=False)

    op.create_table('poll_state',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('watermark', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('backfilled_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('last_error_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'account_id', 'region')
    )
    op.create_table('request_slots',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recent', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('s3_objects',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('processed_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('scopes',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('observed_since', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('signal_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signal_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signal_history_signal_id'), ['signal_id'], unique=False)

    op.create_table('signals',
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identity_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('arn', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('first_seen', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_names', sa.JSON(), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('source_ips', sa.JSON(), nullable=False),
    sa.Column('user_agents', sa.JSON(), nullable=False),
    sa.Column('access_key_ids', sa.JSON(), nullable=False),
    sa.Column('error_codes', sa.JSON(), nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('root_caller', sa.Boolean(), nullable=False),
    sa.Column('long_term_keys_outside_console', sa.JSON(), nullable=False),
    sa.Column('all_from_console', sa.Boolean(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('suppression_id', sa.Integer(), nullable=True),
    sa.Column('created_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('slack_channel', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('slack_ts', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('posted_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('post_claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('post_claimed_until', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('post_attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('signal_id')
    )
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signals_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_signals_first_seen'), ['first_seen'], unique=False)
        batch_op.create_index(batch_op.f('ix_signals_identity'), ['identity'], unique=False)
        batch_op.create_index(batch_op.f('ix_signals_status'), ['status'], unique=False)

    op.create_table('suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('source_cidr', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lifted_at', detection.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppressions_identity'), ['identity'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppressions_identity'))

    op.drop_table('suppressions')
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signals_status'))
        batch_op.drop_index(batch_op.f('ix_signals_identity'))
        batch_op.drop_index(batch_op.f('ix_signals_first_seen'))
        batch_op.drop_index(batch_op.f('ix_signals_account_id'))

    op.drop_table('signals')
    with op.batch_alter_table('signal_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signal_history_signal_id'))

    op.drop_table('signal_history')
    op.drop_table('scopes')
    op.drop_table('s3_objects')
    op.drop_table('request_slots')
    op.drop_table('poll_state')
    op.drop_table('leases')
    with op.batch_alter_table('slack_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_requests_received_at'))

    op.drop_table('slack_requests')
    op.drop_table('known_identities')
    op.drop_table('identity_mappings')
    with op.batch_alter_table('events', schema=None) as batch_op:
        for column in ('identity', 'arn', 'identity_name', 'arn_name', 'source_ip'):
            batch_op.drop_index(f'ix_events_{column}_time')
        batch_op.drop_index(batch_op.f('ix_events_signal_id'))
        batch_op.drop_index(batch_op.f('ix_events_event_time'))
        batch_op.drop_index(batch_op.f('ix_events_account_id'))

    op.drop_table('events')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_signal_id'))
        batch_op.drop_index(batch_op.f('ix_contacts_deadline'))

    op.drop_table('contacts')
    op.drop_table('audit_log')
