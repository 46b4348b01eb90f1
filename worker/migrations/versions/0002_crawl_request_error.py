"""crawl_requests.error: why a failed re-crawl request failed

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:59:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel types)
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and without a default: existing rows (and every request that did not fail)
    # read NULL, so the change is additive for downstream readers.
    with op.batch_alter_table('crawl_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crawl_requests', schema=None) as batch_op:
        batch_op.drop_column('error')
