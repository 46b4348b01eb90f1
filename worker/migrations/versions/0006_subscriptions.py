"""subscriptions: webhook subscribers of the change log

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel types)
from alembic import op
from sqlalchemy.dialects import postgresql

import worker.models

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    # A new table: additive for downstream readers, who never need to read it.
    op.create_table(
        'subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column('topics', JSON, nullable=False),
        sa.Column('kinds', JSON, nullable=False),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('consecutive_failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('last_http_status', sa.Integer(), nullable=True),
        sa.Column('last_attempt_at', worker.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', worker.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('next_attempt_at', worker.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('paused_at', worker.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', worker.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', worker.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('lease_until', worker.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_subscriptions_state', 'subscriptions', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_subscriptions_state', table_name='subscriptions')
    op.drop_table('subscriptions')
