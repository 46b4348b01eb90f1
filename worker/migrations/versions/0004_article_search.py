"""articles full-text search: FTS5 on SQLite, a tsvector with a GIN index on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 12:00:00

The index lives outside the models (worker/models.py): FTS5 is a virtual table with
shadow tables, and the tsvector column exists on PostgreSQL only. Both are kept by
triggers, so every writer (the worker, an operator's UPDATE) keeps them current.
worker/search.py names these objects; the schema-contract comparison and
autogenerate skip them (worker/migrations/env.py).

SQLite: a future batch_alter_table('articles') (copy, drop, rename) drops the
triggers with the old table; such a migration must create them again (_SQLITE_TRIGGERS).

PostgreSQL, built to run on a large, live table: the column is added empty (no table
rewrite, a moment's lock), the trigger fills it for rows written from then on, existing
rows are filled in batches of BACKFILL_BATCH ids that each commit, and the GIN index is
built CONCURRENTLY (reads and writes go on). Each step can be run again, so a migration
interrupted half-way finishes when it is run again.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of worker.search.LANGUAGE_CONFIGS (a migration must not change when the
# code does); tests/integration/test_search.py checks that the two agree.
LANGUAGE_CONFIGS = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nb": "norwegian",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}

# A tsvector holds at most 1 MB and positions up to 16,383: the first 100,000
# characters of a body (~15,000 words, a long read) stay inside both limits.
TITLE_CHARS, SUMMARY_CHARS, BODY_CHARS = 2_000, 20_000, 100_000
BACKFILL_BATCH = 5_000

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts (rowid, title, summary, body)
        VALUES (new.id, new.title, new.summary, new.body);
    END""",
    """CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, summary, body)
        VALUES ('delete', old.id, old.title, old.summary, old.body);
    END""",
    """CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, summary, body ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, summary, body)
        VALUES ('delete', old.id, old.title, old.summary, old.body);
        INSERT INTO articles_fts (rowid, title, summary, body)
        VALUES (new.id, new.title, new.summary, new.body);
    END""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_articles_search")
        op.execute("DROP TRIGGER IF EXISTS articles_search_vector_refresh ON articles")
        op.execute("ALTER TABLE articles DROP COLUMN IF EXISTS search_vector")
        op.execute("DROP FUNCTION IF EXISTS articles_search_vector_refresh()")
        op.execute("DROP FUNCTION IF EXISTS articles_search_vector(text, text, text, text)")
        op.execute("DROP FUNCTION IF EXISTS articles_search_config(text)")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS articles_fts_{name}")
        op.execute("DROP TABLE IF EXISTS articles_fts")


def _upgrade_sqlite() -> None:
    # External content: the text is read from `articles`, not stored twice. porter wraps
    # unicode61: English words are stemmed, Cyrillic passes through it unchanged (only
    # case-folded), diacritics are folded on both sides of a match.
    op.execute(
        "CREATE VIRTUAL TABLE articles_fts USING fts5(title, summary, body,"
        " content='articles', content_rowid='id',"
        " tokenize='porter unicode61 remove_diacritics 2')"
    )
    for trigger in _SQLITE_TRIGGERS:
        op.execute(trigger)
    op.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")


def _upgrade_postgres() -> None:
    cases = "\n".join(
        f"        WHEN '{code}' THEN '{config}'::regconfig"
        for code, config in sorted(LANGUAGE_CONFIGS.items())
    )
    op.execute(
        f"""CREATE OR REPLACE FUNCTION articles_search_config(language text) RETURNS regconfig
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE language
{cases}
        ELSE 'simple'::regconfig
    END
$$"""
    )
    op.execute(
        f"""CREATE OR REPLACE FUNCTION articles_search_vector(
        language text, title text, summary text, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(articles_search_config(language),
                                 left(coalesce(title, ''), {TITLE_CHARS})), 'A')
        || setweight(to_tsvector(articles_search_config(language),
                                 left(coalesce(summary, ''), {SUMMARY_CHARS})), 'B')
        || setweight(to_tsvector(articles_search_config(language),
                                 left(coalesce(body, ''), {BODY_CHARS})), 'C')
$$"""
    )
    op.execute(
        """CREATE OR REPLACE FUNCTION articles_search_vector_refresh() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_vector := articles_search_vector(NEW.language, NEW.title, NEW.summary, NEW.body);
    RETURN NEW;
END
$$"""
    )
    op.execute("ALTER TABLE articles ADD COLUMN IF NOT EXISTS search_vector tsvector")
    op.execute("DROP TRIGGER IF EXISTS articles_search_vector_refresh ON articles")
    op.execute(
        "CREATE TRIGGER articles_search_vector_refresh"
        " BEFORE INSERT OR UPDATE OF title, summary, body, language ON articles"
        " FOR EACH ROW EXECUTE FUNCTION articles_search_vector_refresh()"
    )
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        low, high = bind.execute(
            sa.text("SELECT min(id), max(id) FROM articles WHERE search_vector IS NULL")
        ).one()
        if low is not None:
            for start in range(low, high + 1, BACKFILL_BATCH):
                bind.execute(
                    sa.text(
                        "UPDATE articles SET search_vector ="
                        " articles_search_vector(language, title, summary, body)"
                        " WHERE id >= :start AND id < :stop AND search_vector IS NULL"
                    ),
                    {"start": start, "stop": start + BACKFILL_BATCH},
                )
        # A CONCURRENTLY build that was interrupted leaves an invalid index behind,
        # which IF NOT EXISTS would keep: drop it first.
        invalid = bind.execute(
            sa.text(
                "SELECT 1 FROM pg_index WHERE NOT indisvalid"
                " AND indexrelid = to_regclass('ix_articles_search')"
            )
        ).first()
        if invalid:
            bind.execute(sa.text("DROP INDEX CONCURRENTLY ix_articles_search"))
        bind.execute(
            sa.text(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_articles_search"
                " ON articles USING gin (search_vector)"
            )
        )
