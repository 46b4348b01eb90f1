"""``ingest db copy``: moving a real database from SQLite to PostgreSQL.

The source is made once per session by the store path the pipeline uses (real
classification, fingerprints and dedup into stories, feeds, entries, polls and
re-crawl requests; ``bench.db_copy.build_source``) from the labelled news text the
repo's evaluation reads: 1,200 articles (``INGEST_TEST_COPY_ARTICLES`` to change;
``python -m bench.db_copy`` runs 10,000 with a live writer, docs/operations.md). Each
test copies it and checks the target row for row, not only the command's own report.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.db_copy import article_record, build_source, snapshot, texts
from tests.support import services
from worker import database_ops, migrate, operations, store
from worker.db import make_engine, session_scope
from worker.models import Article, Story
from worker.store.copy import CopyError

ARTICLES = int(os.environ.get("INGEST_TEST_COPY_ARTICLES", "1200"))


@pytest.fixture(scope="session")
def source_db(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The session's source database file, built once; tests copy it before changing it."""
    path = tmp_path_factory.mktemp("copy-source") / "source.db"
    build_source(f"sqlite:///{path}", texts(shared_data), ARTICLES)
    return path


@pytest.fixture
def source_url(source_db: Path, tmp_path: Path) -> Iterator[str]:
    """A private copy of the session's source database (so a test may change it)."""
    path = tmp_path / "source.db"
    # SQLite's backup API: a file copy would miss what is still in the -wal file.
    with closing(sqlite3.connect(source_db)) as original, closing(sqlite3.connect(path)) as mine:
        original.backup(mine)
    url = f"sqlite:///{path}"
    yield url
    make_engine(url).dispose()


@pytest.fixture
def postgres_url(postgres_server: services.PostgresServer) -> str:
    return postgres_server.create_database(f"copy_{uuid.uuid4().hex[:12]}")


def test_copies_a_real_database_to_postgres_row_for_row(source_url: str, postgres_url: str) -> None:
    report = database_ops.copy_database(postgres_url, source_url=source_url)

    assert report.identical
    by_table = {t.table: t for t in report.tables}
    stored = by_table["articles"].source_rows
    assert stored == by_table["articles"].inserted > 0.99 * ARTICLES  # exact copies: one row
    assert by_table["articles"].target_sha256 == by_table["articles"].source_sha256
    source, target = snapshot(source_url), snapshot(postgres_url)
    assert source == target
    # What the source is made of, so the copy is of something real.
    assert len(source["stories"]) < ARTICLES  # syndicated copies joined their story
    assert len(source["article_bands"]) > ARTICLES  # every article's LSH bands
    assert len(source["entries"]) == ARTICLES
    assert len(source["feed_polls"]) == 60
    # The sequences moved past the copied ids: the store path writes on in PostgreSQL.
    assert report.sequences["articles"] == max(row[0] for row in target["articles"]) + 1
    with session_scope(postgres_url) as session:
        outcome = store.save_article(session, article_record(ARTICLES + 1, ("A new story on "
                                     "Zaporizhzhia", "Fresh text. " * 40, "en"), 1))  # fmt: skip
    assert outcome.action == "created"
    assert outcome.article_id == report.sequences["articles"]
    # The target records the run that wrote it, with its verdict.
    with make_engine(postgres_url).connect() as conn:
        runs = conn.execute(sa.text("SELECT source, identical, report FROM copy_runs")).all()
    assert [(source, identical) for source, identical, _ in runs] == [(source_url, True)]
    assert runs[0][2]["tables"]["articles"]["source_rows"] == stored


def test_an_interrupted_copy_resumes_and_a_second_run_catches_up(
    source_url: str, postgres_url: str
) -> None:
    """Killed mid-table, the next run rewrites only what is missing; after the source
    changes (a re-title, a reclassification, a removed feed), a run brings the target
    to the source again, deletions included."""

    class InterruptedError(Exception):
        pass

    def stop_in_articles(table: str, rows: int) -> None:
        if table == "articles" and rows >= ARTICLES // 2:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        database_ops.copy_database(
            postgres_url, source_url=source_url, chunk_rows=500, progress=stop_in_articles
        )
    partial = snapshot(postgres_url)
    stored = len(snapshot(source_url)["articles"])
    assert 0 < len(partial["articles"]) < stored

    resumed = database_ops.copy_database(postgres_url, source_url=source_url, chunk_rows=500)
    articles = {t.table: t for t in resumed.tables}["articles"]
    assert resumed.identical
    assert (articles.unchanged, articles.inserted) == (
        len(partial["articles"]),
        stored - len(partial["articles"]),
    )

    with session_scope(source_url) as session:
        first = session.get(Article, 1)
        assert first is not None
        first.title, first.is_ukraine_security = "Re-titled", not first.is_ukraine_security
        store.remove_feed(session, "feed-2")
    caught_up = database_ops.copy_database(postgres_url, source_url=source_url)
    assert caught_up.identical
    changed = {t.table: t for t in caught_up.tables}
    assert changed["feeds"].deleted == 1
    assert changed["articles"].updated >= 1
    assert snapshot(source_url) == snapshot(postgres_url)


def test_copies_back_from_postgres_to_sqlite(
    source_url: str, postgres_url: str, tmp_path: Path
) -> None:
    database_ops.copy_database(postgres_url, source_url=source_url)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert database_ops.copy_database(back, source_url=postgres_url).identical
    assert snapshot(back) == snapshot(source_url)


def test_refuses_what_it_cannot_copy(source_url: str, postgres_url: str, tmp_path: Path) -> None:
    with pytest.raises(operations.BadInputError, match="target is the source"):
        database_ops.copy_database(source_url, source_url=source_url)
    with pytest.raises(operations.BadInputError, match="not a database URL"):
        database_ops.copy_database("not a url", source_url=source_url)
    old = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(old, revision="0001")
    with pytest.raises(operations.BadInputError, match="run `ingest db upgrade`"):
        database_ops.copy_database(postgres_url, source_url=old)
    # A target holding other data is refused, not merged.
    migrate.upgrade(postgres_url)
    with session_scope(postgres_url) as session:
        store.upsert_feed(session, name="feed-0", url="https://elsewhere.example/rss")
    with pytest.raises(operations.BadInputError, match=r"table feeds.*empty database"):
        database_ops.copy_database(postgres_url, source_url=source_url)


def test_copy_error_is_raised_for_a_bad_chunk_size(source_url: str, tmp_path: Path) -> None:
    with pytest.raises(CopyError):
        store.copy.copy_database(
            make_engine(source_url),
            make_engine(f"sqlite:///{tmp_path / 'x.db'}"),
            source_label=source_url,
            chunk_rows=0,
        )


def test_cli_copies_and_reports_json(source_url: str, postgres_url: str) -> None:
    env = {**os.environ, "INGEST_DATABASE_URL": source_url}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "copy", "--to", postgres_url, "--json"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["identical"] is True
    assert {t["table"]: t["source_rows"] for t in report["tables"]}["articles"] > 0.99 * ARTICLES
    refused = subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "copy", "--to", source_url],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "target is the source" in refused.stderr
    assert Story.__tablename__ in {t["table"] for t in report["tables"]}
