"""articles: indexes for the newest-first listing, alone and filtered by label or feed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:30:00

`GET /articles` and `ingest articles` list by ``coalesce(published_at, created_at)``
newest first, then id. Without an index on that expression each page sorted the whole
table (154 ms on SQLite, 187 ms on PostgreSQL at 100,000 articles; docs/benchmark.md).
With it, a page reads its rows in index order and stops. The label and feed filters get
their own (is_ukraine_security or feed_id first): without them SQLite, which keeps no
statistics unless ANALYZE is run, answers a filtered page from
ix_articles_label_published / ix_articles_feed_published by sorting every article with
that label or of that feed (178 ms for a feed of 20,000 articles). The expression must
stay exactly the one :func:`worker.models.article_sort_time` builds, or the planners stop
using the indexes.

Additive: no column changes; downstream readers may use the indexes too.

PostgreSQL, for a large, live table: built CONCURRENTLY (reads and writes go on while
they build), outside the migration's transaction as 0004's GIN index is. An interrupted
CONCURRENTLY build leaves an invalid index, which IF NOT EXISTS would keep: it is dropped
first, so running the migration again finishes the job. SQLite has no online build: the
CREATE INDEX holds the write lock while it runs (seconds at 100,000 rows).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of worker.models.article_sort_time and the indexes on it (a migration must
# not change when the code does); the schema-contract test compares them on PostgreSQL.
KEY = "coalesce(published_at, created_at) DESC, id DESC"
INDEXES = {
    "ix_articles_newest": f"({KEY})",
    "ix_articles_label_newest": f"(is_ukraine_security, {KEY})",
    "ix_articles_feed_newest": f"(feed_id, {KEY})",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, columns in INDEXES.items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON articles {columns}")
        return
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        for name, columns in INDEXES.items():
            invalid = bind.execute(
                sa.text(
                    "SELECT 1 FROM pg_index WHERE NOT indisvalid"
                    " AND indexrelid = to_regclass(:name)"
                ),
                {"name": name},
            ).first()
            if invalid:
                bind.execute(sa.text(f"DROP INDEX CONCURRENTLY {name}"))
            bind.execute(
                sa.text(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON articles {columns}")
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.get_bind().execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
