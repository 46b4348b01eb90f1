"""articles: an exact duplicate takes its original's search vector instead of computing it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:00:00

PostgreSQL only (SQLite's FTS5 index has no per-row value to copy). The trigger of 0004
computed ``articles_search_vector(language, title, summary, body)`` for every inserted
row: three ``to_tsvector`` calls, the largest part of an article's insert. With the copy,
``bench/run.py --pg-stats`` puts a duplicate's insert at 0.77 ms of server time against a
new article's 1.80, and the server's time per stored article 0.5 ms lower in a run where
half the articles are exact duplicates (docs/benchmark.md). An exact
duplicate (``duplicate_of_id`` set by the store) has its original's body; when its
language, title and summary are the original's as well, the function would return the
original's vector, so the trigger copies it (one primary-key read, the fields compared
as stored). Any difference, an original without a vector, and every UPDATE compute it
as before. The stored vectors are the same as before this migration: downstream search
sees no change.

Replaces only the trigger's function; the trigger, the column and the GIN index stay.
The downgrade puts 0004's function back.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COMPUTE = (
    "NEW.search_vector := articles_search_vector(NEW.language, NEW.title, NEW.summary,"
    " NEW.body);"
)

_COPYING = f"""CREATE OR REPLACE FUNCTION articles_search_vector_refresh() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    original_vector tsvector;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.duplicate_of_id IS NOT NULL THEN
        SELECT original.search_vector INTO original_vector
          FROM articles AS original
         WHERE original.id = NEW.duplicate_of_id
           AND original.language IS NOT DISTINCT FROM NEW.language
           AND original.title IS NOT DISTINCT FROM NEW.title
           AND original.summary IS NOT DISTINCT FROM NEW.summary
           AND original.body IS NOT DISTINCT FROM NEW.body;
        IF original_vector IS NOT NULL THEN
            NEW.search_vector := original_vector;
            RETURN NEW;
        END IF;
    END IF;
    {_COMPUTE}
    RETURN NEW;
END
$$"""

_COMPUTING = f"""CREATE OR REPLACE FUNCTION articles_search_vector_refresh() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    {_COMPUTE}
    RETURN NEW;
END
$$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_COPYING)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_COMPUTING)
