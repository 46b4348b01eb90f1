"""articles: an index for the newest-first listing, ix_articles_newest

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:30:00

`GET /articles` and `ingest articles` list by ``coalesce(published_at, created_at)``
newest first, then id. Without an index on that expression each page sorted the whole
table (154 ms on SQLite, 187 ms on PostgreSQL at 100,000 articles; docs/benchmark.md).
With it, a page reads its rows in index order and stops. The expression must stay
exactly the one :func:`worker.models.article_sort_time` builds.

Additive: no column changes, downstream readers may use the index too.

PostgreSQL, for a large, live table: built CONCURRENTLY (reads and writes go on while it
builds), outside the migration's transaction as 0004's GIN index is. An interrupted
CONCURRENTLY build leaves an invalid index, which IF NOT EXISTS would keep: it is dropped
first, so running the migration again finishes the job. SQLite has no online build: the
CREATE INDEX holds the write lock for its duration (seconds at 100,000 rows).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_articles_newest"
# Frozen copy of worker.models.article_sort_time (a migration must not change when the
# code does); the schema-contract test checks that the two agree on PostgreSQL.
COLUMNS = "(coalesce(published_at, created_at) DESC, id DESC)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON articles {COLUMNS}")
        return
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        invalid = bind.execute(
            sa.text(
                "SELECT 1 FROM pg_index WHERE NOT indisvalid"
                " AND indexrelid = to_regclass(:name)"
            ),
            {"name": INDEX},
        ).first()
        if invalid:
            bind.execute(sa.text(f"DROP INDEX CONCURRENTLY {INDEX}"))
        bind.execute(
            sa.text(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON articles {COLUMNS}")
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        return
    with op.get_context().autocommit_block():
        op.get_bind().execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}"))
