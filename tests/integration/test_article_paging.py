"""The newest-first article listing pages through ``ix_articles_newest`` (migration 0007)
and still returns exactly the order it always had: ``coalesce(published_at, created_at)``
newest first, then id, with every filter, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.factories import add_feed
from worker import operations
from worker.db import get_engine, session_scope
from worker.models import Article, Story
from worker.store import ArticleFilter

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, tzinfo=UTC)
ROWS = 240


def row(i: int, feeds: list[int]) -> dict[str, Any]:
    """Article ``i``: a fifth have no publication date (listed by when they were stored),
    runs of six share a publication time, storage times equal other rows' publication
    times, and ids do not follow time."""
    created = T0 + timedelta(hours=(i * 7) % 40)
    published = None if i % 5 == 0 else T0 + timedelta(hours=(ROWS - i) // 6)
    return {
        "id": i + 1,
        "url": f"https://p.example/{i}",
        "canonical_url": f"https://p.example/{i}",
        "title": f"article {i}",
        "title_history": [],
        "body": "",
        "language": "uk" if i % 4 == 0 else "en",
        "published_at": published,
        "fetched_at": created,
        "extraction_method": "trafilatura",
        "content_hash": f"{i:064x}",
        "is_ukraine_security": i % 3 == 0,
        "security_score": 0.5,
        "topics": [],
        "evidence": {},
        "classifier_version": "test",
        "feed_id": feeds[i % 2],
        "created_at": created,
        "updated_at": created,
    }


def seed(feeds: list[int]) -> list[dict[str, Any]]:
    rows = [row(i, feeds) for i in range(ROWS)]
    with session_scope() as session:
        session.execute(sa.insert(Article), rows)
    return rows


def expected(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[int]:
    def key(row: dict[str, Any]) -> tuple[datetime, int]:
        return (row["published_at"] or row["created_at"], row["id"])

    return [row["id"] for row in sorted(filter(keep, rows), key=key, reverse=True)]


def paged(where: ArticleFilter, limit: int) -> list[int]:
    """Every page in turn, each from the previous page's key, as the API's cursor does."""
    ids: list[int] = []
    after = None
    while True:
        items, after = operations.list_articles(where, limit=limit, after=after)
        ids += [item.id for item in items]
        if after is None:
            return ids


def test_pages_keep_the_order_across_nulls_and_ties(database_url: str) -> None:
    """All pages, of several sizes and under each filter, equal one sort of all rows."""
    feeds = [add_feed(name="kyiv"), add_feed(name="other")]
    rows = seed(feeds)
    since, until = T0 + timedelta(hours=12), T0 + timedelta(hours=30)
    cases: list[tuple[ArticleFilter, Callable[[dict[str, Any]], bool]]] = [
        (ArticleFilter(), lambda r: True),
        (ArticleFilter(label="ukraine-security"), lambda r: r["is_ukraine_security"]),
        (ArticleFilter(label="other"), lambda r: not r["is_ukraine_security"]),
        (ArticleFilter(language="uk"), lambda r: r["language"] == "uk"),
        (ArticleFilter(feed="other"), lambda r: r["feed_id"] == feeds[1]),
        (
            ArticleFilter(since=since, until=until, label="ukraine-security"),
            lambda r: (
                r["is_ukraine_security"] and since <= (r["published_at"] or r["created_at"]) < until
            ),
        ),
    ]
    for where, keep in cases:
        want = expected(rows, keep)
        assert len(want) > 10
        for limit in (7, 50):
            assert paged(where, limit) == want, (where, limit)
    # One row a page: every cursor sits on a run of equal times.
    assert paged(cases[1][0], 1) == expected(rows, cases[1][1])


def listing_sql(where: ArticleFilter, after: Any) -> tuple[str, Any]:
    """The SQL (and parameters) one listing call runs for its page."""
    engine = get_engine()
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        operations.list_articles(where, limit=10, after=after)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return seen[-1]


def test_the_listing_reads_the_index_in_order(database_url: str) -> None:
    """The query spells the indexed expression exactly, so the planner can read a page
    from the index, starting at the cursor, with no sort. PostgreSQL is told sorting and
    whole-table scans are off limits: a tiny table would otherwise be scanned, and an
    expression that missed the index would still show up as a Sort."""
    with session_scope() as session:
        session.add(Story(title="s"))
    after = (T0, 1_000)
    cases = {
        "ix_articles_newest": ArticleFilter(),
        "ix_articles_label_newest": ArticleFilter(label="ukraine-security"),
        "ix_articles_feed_newest": ArticleFilter(feed="kyiv"),
    }
    for index, where in cases.items():
        statement, parameters = listing_sql(where, after)
        with get_engine().connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                for setting in ("enable_sort", "enable_seqscan", "enable_bitmapscan"):
                    connection.exec_driver_sql(f"SET {setting} = off")
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            plan = connection.exec_driver_sql(explain + statement, parameters).all()
        text = "\n".join(str(line[-1]) for line in plan)
        assert index in text, text
        assert "Sort" not in text, text
        assert "TEMP B-TREE" not in text, text
        if postgres:  # the keyset is where the index scan starts
            assert "Index Cond" in text, text
            assert "ROW(" in text, text
        else:
            assert f"SEARCH articles USING INDEX {index} (" in text, text
            assert "<expr><?)" in text, text
