"""the triage desk (SPEC §8): the App Home's open tabs; signals counted per suppression

Revision ID: 0008_triage_desk
Revises: 0007_investigations
"""

import sqlalchemy as sa
import sqlmodel
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


def downgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signals_suppression_id'))

    with op.batch_alter_table('home_tabs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_home_tabs_opened_at'))

    op.drop_table('home_tabs')
