"""Full-text search of stored articles on SQLite (FTS5) and PostgreSQL (tsvector + GIN):
what a search finds, in which order, with the other filters and across pages; that the
index follows the rows; that the migration builds it for rows already there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import col

from tests.support.factories import add_feed, add_listed_article
from worker import migrate, operations
from worker.db import dispose_engines, get_engine, session_scope
from worker.models import Article
from worker.search import LANGUAGE_CONFIGS
from worker.store import ArticleFilter

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def article(n: int, title: str, body: str = "", *, summary: str = "", **fields: Any) -> int:
    fields.setdefault("published_at", T0 + timedelta(hours=n))
    return add_listed_article(n=n, title=title, summary=summary, body=body, **fields)


def found(query: str, **filters: Any) -> list[int]:
    """Ids the search finds, in the order it ranks them."""
    items, _ = operations.list_articles(ArticleFilter(query=query, **filters), limit=200)
    return [a.id for a in items]


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    from worker.api import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def test_english_words_are_stemmed(database_url: str) -> None:
    """ "strikes" finds "strike" and "striking" in English text (PostgreSQL's english
    configuration; SQLite's porter tokenizer)."""
    strike = article(1, "Russian strike hits Kharkiv power station")
    striking = article(2, "Drones keep striking Odesa port", "The port was hit again.")
    article(3, "Talks on a ceasefire resume in Geneva")
    assert set(found("strikes")) == {strike, striking}
    assert found("power stations") == [strike]


def test_ukrainian_and_russian_words_are_found(database_url: str) -> None:
    """Cyrillic text is found in any case; Russian is stemmed on PostgreSQL only, and
    Ukrainian (no built-in stemmer) by its exact forms on both."""
    uk = article(1, "Обстріл Запорізької АЕС", "Енергоблок відключено від мережі.", language="uk")
    ru = article(2, "Удары по Запорожской АЭС", "Энергоблок отключен от сети.", language="ru")
    article(3, "Zaporizhzhia plant loses power", "The IAEA said so.", language="en")
    assert found("запорізької") == [uk]
    assert found("ЕНЕРГОБЛОК") == [uk]
    assert found("Запорожской") == [ru]
    assert found("мережі OR сети") in ([uk, ru], [ru, uk])
    # Another form of the same Russian word: the russian stemmer makes them one.
    assert found("запорожская") == ([ru] if is_postgres(database_url) else [])
    assert found("запорізька") == []  # Ukrainian is not stemmed


def test_phrases_negation_and_or(database_url: str) -> None:
    both = article(1, "IAEA warns on nuclear plant safety", "Shelling near the reactor.")
    apart = article(2, "Plant workers detained", "A nuclear inspector was refused entry.")
    drone = article(3, "Shahed drone attack on Kyiv", "Air defence shot down drones.")
    other = article(4, "Drone makers in Europe scale up", "A new drone factory opens.")
    assert found('"nuclear plant"') == [both]
    assert set(found("nuclear plant")) == {both, apart}
    assert found("drone -shahed") == [other]
    assert found('drone -"shahed drone"') == [other]
    assert set(found("reactor OR factory")) == {both, other}
    assert set(found("iaea reactor OR kyiv")) == {both, drone}
    # An operator of either engine is only a word: title: filters nothing.
    assert found("title:plant") == []


def test_a_title_match_ranks_above_a_summary_and_a_body_match(database_url: str) -> None:
    in_body = article(1, "Weekly briefing", "Ministers discussed sanctions on Russian oil today.")
    in_title = article(2, "New sanctions on Russian oil", "The EU agreed a package.")
    in_summary = article(3, "EU package agreed", "Oil and gas.", summary="The sanctions widen.")
    assert found("sanctions") == [in_title, in_summary, in_body]


def test_search_combines_with_every_filter(database_url: str) -> None:
    kyiv, other = add_feed(name="kyiv"), add_feed(name="other")
    base = {"published_at": T0, "feed_id": kyiv, "topics": ["sanctions"], "language": "en"}
    match = article(1, "Oil sanctions tighten", **base)
    article(2, "Oil sanctions tighten", **{**base, "positive": False})
    article(3, "Oil sanctions tighten", **{**base, "topics": ["battlefield"]})
    article(4, "Oil sanctions tighten", **{**base, "published_at": T0 - timedelta(days=2)})
    article(5, "Oil sanctions tighten", **{**base, "published_at": T0 + timedelta(days=2)})
    article(6, "Oil sanctions tighten", **{**base, "feed_id": other})
    article(7, "Oil sanctions tighten", **{**base, "language": "de"})
    article(8, "Grain exports rise", **base)
    with session_scope() as session:
        story_id = session.get(Article, match).story_id  # type: ignore[union-attr]
    filters = {
        "label": "ukraine-security",
        "topic": "sanctions",
        "since": T0 - timedelta(days=1),
        "until": T0 + timedelta(days=1),
        "feed": "kyiv",
        "language": "en",
    }
    assert found("sanctions", **filters) == [match]
    assert found("sanctions", **filters, story_id=story_id) == [match]
    for name in filters:
        assert len(found("sanctions", **{k: v for k, v in filters.items() if k != name})) == 2


def test_relevance_pages_have_no_duplicates_or_gaps(database_url: str, client: TestClient) -> None:
    """Many equal ranks (ties broken by id) and different ones, paged 4 at a time."""
    ids = [
        article(
            n, "Kherson flooding" if n % 3 else "Kherson flooding Kherson", "kherson " * (n % 4)
        )
        for n in range(23)
    ]
    article(99, "Unrelated", "Nothing here.")
    expected = found("kherson")
    assert sorted(expected) == sorted(ids)
    seen: list[int] = []
    cursor = None
    for _ in range(len(ids)):  # a cursor that does not advance must not loop forever
        params: dict[str, Any] = {"q": "kherson", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/articles", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def test_sort_with_a_search(database_url: str, client: TestClient) -> None:
    first = article(1, "Odesa port reopens", "Odesa odesa odesa.")
    second = article(2, "Odesa", "x")
    get = lambda **params: client.get("/articles", params=params)  # noqa: E731
    assert [i["id"] for i in get(q="odesa", sort="published").json()["items"]] == [second, first]
    assert [i["id"] for i in get(q="odesa", sort="id").json()["items"]] == [second, first]
    assert get(sort="relevance").status_code == 400
    relevance_cursor = get(q="odesa", limit=1).json()["next_cursor"]
    assert get(q="odesa", sort="published", cursor=relevance_cursor).status_code == 400


HOSTILE = [
    '"',
    '""',
    "-",
    "-war",
    "war OR -peace",
    "OR",
    "NEAR(a b)",
    "title:x",
    "x*",
    "^x",
    "a AND",
    "(",
    "'; DROP TABLE articles; --",
    "\x00",
    "a\x00b",
    "\\",
    "!!!",
    "&|!<->:*",
    "x" * 501,
    " " * 600,
    "ﷺ",
    "🇺🇦",
]


@pytest.mark.parametrize("sort", [None, "published"])
def test_hostile_searches_are_answered_not_failed(
    database_url: str, client: TestClient, sort: str | None
) -> None:
    article(1, "A war story", "peace x")
    for text in HOSTILE:
        params = {"q": text} if sort is None else {"q": text, "sort": sort}
        response = client.get("/articles", params=params)
        assert response.status_code in (200, 400), (text, response.status_code, response.text)
        if response.status_code == 400:
            assert response.json()["detail"]


TAMPERED = [
    ["relevance", float("nan"), 1],
    ["relevance", float("inf"), 1],
    ["relevance", "0.5", 1],
    ["relevance", True, 1],
    ["relevance", 0.5, 2**70],
    ["relevance", 0.5, -1],
    ["relevance", 0.5, 1.5],
    ["relevance", 0.5],
    ["relevance", None, 1],
    ["published", "9999-12-31T23:59:59-05:00", 1],
    ["published", 12, 1],
    ["id", None, float("inf")],
    ["id", None, 2**64],
    {"relevance": 1},
]


def test_tampered_cursors_are_400(database_url: str, client: TestClient) -> None:
    from worker.api.cursors import encode_cursor

    article(1, "Mariupol", "x")
    for parts in TAMPERED:
        cursor = encode_cursor(parts) if isinstance(parts, dict) else encode_cursor(*parts)
        sort = parts[0] if isinstance(parts, list) else "relevance"
        params = {"cursor": cursor, "sort": sort}
        if sort == "relevance":
            params["q"] = "mariupol"
        response = client.get("/articles", params=params)
        assert response.status_code == 400, (parts, response.text)


def test_the_index_follows_updates_and_deletes(database_url: str) -> None:
    """The triggers: a new title or body is found and the old one is not; a deleted
    article is gone; SQLite's index still agrees with its content table."""
    article_id = article(1, "Kramatorsk station shelled", "Evacuation trains delayed.")
    with session_scope() as session:
        row = session.get(Article, article_id)
        assert row is not None
        row.title, row.body = "Sloviansk bridge destroyed", "Supply routes cut."
    assert found("kramatorsk") == []
    assert found("evacuation") == []
    assert found("sloviansk") == [article_id]
    assert found("supply routes") == [article_id]
    with session_scope() as session:
        row = session.get(Article, article_id)
        assert row is not None
        row.summary = "Ferry crossing"
        row.language = "ru"
    assert found("ferry") == [article_id]
    assert found("sloviansk") == [article_id]
    with session_scope() as session:
        session.execute(sa.delete(Article).where(col(Article.id) == article_id))
    assert found("sloviansk") == []
    if not is_postgres(database_url):
        with get_engine(database_url).begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO articles_fts (articles_fts, rank) VALUES ('integrity-check', 1)"
                )
            )


def test_store_path_keeps_the_index(database_url: str) -> None:
    """Articles written the pipeline's way (``store.save_article``) are found, and a
    re-crawl that changes the headline is found under the new one."""
    from tests.support.factories import save_article

    outcome = save_article(url="https://news.example/x", title="Bakhmut defenders hold")
    assert found("bakhmut") == [outcome.article_id]
    save_article(url="https://news.example/x", title="Chasiv Yar defenders hold")
    assert found("bakhmut") == []
    assert found("chasiv yar") == [outcome.article_id]


def test_migration_builds_the_index_for_existing_rows(database_url: str) -> None:
    """Rows stored before 0004 are found after it (the backfill); downgrading removes
    every index object and keeps the rows; upgrading again builds it again."""
    from alembic.script import ScriptDirectory

    ids = [article(n, f"Pokrovsk front {n}", "Mines cleared near Pokrovsk.") for n in range(7)]
    script = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    before = script.get_revision("0004").down_revision
    assert isinstance(before, str)
    migrate.downgrade(database_url, before)
    dispose_engines()
    with get_engine(database_url).connect() as connection:
        inspector = sa.inspect(connection)
        assert "search_vector" not in {c["name"] for c in inspector.get_columns("articles")}
        assert not [t for t in inspector.get_table_names() if t.startswith("articles_fts")]
        assert connection.execute(sa.text("SELECT count(*) FROM articles")).scalar() == len(ids)
    migrate.upgrade(database_url)
    dispose_engines()
    assert sorted(found("pokrovsk")) == ids
    assert found("pokrovsk front 3")[0] == ids[3]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_language_configurations_match_the_code(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        for code, config in [*LANGUAGE_CONFIGS.items(), ("uk", "simple"), (None, "simple")]:
            got = connection.execute(
                sa.text("SELECT articles_search_config(:code)::text"), {"code": code}
            ).scalar()
            assert got == config, code


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_search_uses_the_gin_index(database_url: str) -> None:
    """On a few thousand rows the planner answers a search from ix_articles_search."""
    words = ["kyiv", "drone", "sanctions", "grain", "ceasefire", "artillery", "brigade"]
    with get_engine(database_url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO articles (url, canonical_url, title, title_history, body, fetched_at,"
                " language, extraction_method, content_hash, is_ukraine_security,"
                " security_score, topics, evidence, classifier_version, created_at, updated_at)"
                " SELECT 'u' || i, 'u' || i, (CAST(:words AS text[]))[1 + i % 7] || ' report',"
                " '[]', repeat((CAST(:words AS text[]))[1 + (i / 7) % 7] || ' text ', 20)"
                " || md5(i::text), now(),"
                " CASE WHEN i % 3 = 0 THEN 'uk' ELSE 'en' END, 'trafilatura', md5(i::text),"
                " i % 2 = 0, 0.5, '[]', '{}', 'bench', now(), now()"
                " FROM generate_series(1, 5000) AS i"
            ),
            {"words": words},
        )
        connection.execute(sa.text("ANALYZE articles"))
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "search_vector" in statement:
            statements.append((statement, parameters))

    engine = get_engine(database_url)
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        assert found("a87ff679a2f3e71d9181a67b7542122c ceasefire", label="ukraine-security")
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    (statement, parameters), *_ = statements
    with engine.connect() as connection:
        plan = "\n".join(
            r[0] for r in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
        )
    assert "ix_articles_search" in plan, plan


def test_cli_query(database_url: str) -> None:
    """`ingest articles --query`: JSON and table, most relevant first, with filters; a
    search that cannot run is exit 2 with the reason."""
    import json

    from typer.testing import CliRunner

    from worker.cli import app

    runner = CliRunner()
    in_body = article(1, "Frontline update", "Avdiivka defenders regroup.")
    in_title = article(2, "Avdiivka defenders withdraw", "The brigade moved west.")
    article(3, "Avdiivka", "x", positive=False)
    result = runner.invoke(
        app, ["articles", "--query", "avdiivka defenders", "--label", "ukraine-security", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in json.loads(result.stdout)] == [in_title, in_body]
    table = runner.invoke(app, ["articles", "-q", "avdiivka"])
    assert table.exit_code == 0
    assert "Avdiivka defenders withdraw" in table.stdout
    refused = runner.invoke(app, ["articles", "--query", "-avdiivka"])
    assert refused.exit_code == 2
    assert "not negated" in refused.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_exact_duplicate_takes_its_originals_vector(database_url: str) -> None:
    """Migration 0008: an exact duplicate stored by the pipeline gets its original's
    vector without computing it when language, title and summary match too; the stored
    vector is the one the function would compute, and a duplicate with another title
    computes its own."""
    from tests.support.factories import TITLE, save_article

    def vectors(article_id: int) -> tuple[str, str]:
        """(stored vector, the vector its fields give) as text."""
        with get_engine(database_url).connect() as connection:
            stored, computed = connection.execute(
                sa.text(
                    "SELECT search_vector::text,"
                    " articles_search_vector(language, title, summary, body)::text"
                    " FROM articles WHERE id = :id"
                ),
                {"id": article_id},
            ).one()
        return str(stored), str(computed)

    original = save_article(url="https://first.example/story")
    copy = save_article(url="https://second.example/story")
    assert copy.action == "duplicate"
    assert copy.duplicate_of_id == original.article_id
    stored, computed = vectors(copy.article_id)
    assert stored == computed == vectors(original.article_id)[0]
    assert "kyiv" in stored or "ukrain" in stored  # a real vector, not an empty one

    # Mark the original's vector, so that a copy can be told from a computation.
    with get_engine(database_url).begin() as connection:
        connection.execute(
            sa.text("UPDATE articles SET search_vector = 'marker:1' WHERE id = :id"),
            {"id": original.article_id},
        )
    copied = save_article(url="https://third.example/story")
    retitled = save_article(url="https://fourth.example/story", title=TITLE + " (wire)")
    assert copied.duplicate_of_id == retitled.duplicate_of_id == original.article_id
    assert vectors(copied.article_id)[0] == "'marker':1"
    stored, computed = vectors(retitled.article_id)
    assert stored == computed
    assert "wire" in stored
