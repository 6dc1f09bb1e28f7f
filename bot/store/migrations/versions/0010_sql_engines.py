"""sql engines: the first start's history read from Athena or CloudTrail Lake, once per source

Revision ID: 0010_sql_engines
Revises: 0009_org_scale
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import detection.store

revision = '0010_sql_engines'
down_revision = '0009_org_scale'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('engine_backfills',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('since', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('until', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', detection.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('query_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('bytes_scanned', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source')
    )


def downgrade() -> None:
    op.drop_table('engine_backfills')
