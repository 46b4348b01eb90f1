"""The schema contract: migrations produce exactly the models, and docs/schema.md
documents every column, so a schema change can never reach downstream apps silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from worker import models  # noqa: F401  (registers the tables)
from worker.db import get_engine
from worker.search import is_index_object

pytestmark = pytest.mark.integration

SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def test_migrated_schema_matches_models(database_url: str) -> None:
    """`alembic upgrade head` on a fresh database (the fixture) leaves nothing to autogenerate."""
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                # the full-text index (migration 0004) is outside the models
                "include_name": lambda name, type_, _parents: not is_index_object(type_, name),
            },
        )
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"


def test_migration_0002_keeps_crawl_requests_both_ways(database_url: str) -> None:
    """0002 adds crawl_requests.error to a table that may already hold rows: upgrading
    keeps them (error NULL), downgrading drops only the column, and head is reachable
    again - on SQLite this goes through Alembic's batch (copy-table) mode."""
    import sqlalchemy as sa

    from worker import migrate
    from worker.db import dispose_engines

    migrate.downgrade(database_url, "0001")
    dispose_engines()  # reflect the downgraded table, not a cached one
    with get_engine(database_url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO crawl_requests (requested_by, requested_at, kind, target, force,"
                " status, total, done, failed) VALUES ('alice', CURRENT_TIMESTAMP, 'feed',"
                " 'kyiv', false, 'done', 2, 2, 0)"
            )
        )
    migrate.upgrade(database_url)
    assert _revision(database_url) == migrate.current_heads(database_url)[0]
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(
            sa.text("SELECT requested_by, status, total, error FROM crawl_requests")
        ).all()
    assert [tuple(r) for r in rows] == [("alice", "done", 2, None)]
    migrate.downgrade(database_url, "0001")
    with get_engine(database_url).connect() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("crawl_requests")}
        count = connection.execute(sa.text("SELECT count(*) FROM crawl_requests")).scalar()
    assert "error" not in columns
    assert count == 1
    migrate.upgrade(database_url)


def _revision(url: str) -> str | None:
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_every_migration_goes_down_and_up_again(database_url: str) -> None:
    """Each revision's downgrade undoes its upgrade on both databases: step down to the
    first revision and back, and the schema is again exactly the models'."""
    from alembic.script import ScriptDirectory

    from worker import migrate
    from worker.db import dispose_engines

    script = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    revisions = [r.revision for r in script.walk_revisions()]  # head first
    assert len(revisions) >= 3
    for revision in revisions[:-1]:
        assert _revision(database_url) == revision
        migrate.downgrade(database_url, "-1")
        dispose_engines()
    assert _revision(database_url) == revisions[-1]
    migrate.upgrade(database_url)
    dispose_engines()
    assert _revision(database_url) == revisions[0]
    test_migrated_schema_matches_models(database_url)


def documented_columns() -> dict[str, set[str]]:
    """``## table`` sections of docs/schema.md and the `column` names in their tables."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in SCHEMA_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## (\w+)", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
            continue
        cell = re.match(r"^\| `(\w+)` \|", line)
        if cell and current is not None:
            current.add(cell.group(1))
    return sections


def test_every_column_is_documented() -> None:
    documented = documented_columns()
    for table in SQLModel.metadata.sorted_tables:
        assert table.name in documented, f"docs/schema.md has no '## {table.name}' section"
        missing = {c.name for c in table.columns} - documented[table.name]
        assert not missing, f"{table.name}: undocumented columns {sorted(missing)}"


def test_docs_describe_no_column_that_does_not_exist() -> None:
    tables = {t.name: {c.name for c in t.columns} for t in SQLModel.metadata.sorted_tables}
    for name, columns in documented_columns().items():
        if name in tables:
            assert columns <= tables[name], (
                f"{name}: documented but absent {columns - tables[name]}"
            )
