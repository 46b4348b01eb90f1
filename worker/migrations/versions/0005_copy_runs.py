"""copy_runs: the runs of `ingest db copy` that wrote into this database

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel types)
from alembic import op
from sqlalchemy.dialects import postgresql

import worker.models

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table: additive for downstream readers, who never need to read it.
    op.create_table(
        'copy_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column('started_at', worker.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', worker.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('identical', sa.Boolean(), nullable=True),
        sa.Column(
            'report',
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('copy_runs')
