"""What does full-text search cost: per query, per stored article, and to migrate?

Why: ``GET /articles?q=`` and ``ingest articles --query`` must answer while the
workers write, and the index (FTS5 on SQLite, a trigger-kept tsvector with a GIN index
on PostgreSQL, migration 0004) is maintained on every store. This seeds a database at
the migration before 0004 with N articles of real text (the text pool and seeding of
``bench.reclassify_scale``: full articles and feed items in English, Russian,
Ukrainian, ...), then measures

1. the migration to head (the backfill of N rows and the index build);
2. query latency through ``operations.list_articles`` (the API's and the CLI's code
   path, 50 rows a page): median and p95 of R runs per query, next to the same listing
   without a search;
3. the write overhead on the store path: ``store.save_article`` (dedup lookups, story,
   bands, one transaction per article, as the pipeline stores) of 2M new articles in
   blocks of 10, the index's triggers switched off in every other block; the ratio of
   the per-article times with and without.

    python -m bench.search_scale                        # 20,000 articles, SQLite and PostgreSQL
    python -m bench.search_scale --articles 2000 --writes 200 --sqlite-only   # a short run

Prints JSON. Needs ``../shared/data`` and the PostgreSQL binaries the test suite uses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.reclassify_scale import seed, text_pool  # noqa: E402
from eval.classifier_eval import DEFAULT_DATA_DIR  # noqa: E402

QUERIES = {
    "rare word": "belgorod",
    "common word": "ukraine",
    "two words": "nuclear weapons",
    "phrase": '"security guarantees"',
    "or": "kharkiv OR odesa",
    "negation": "tank -leopard",
    "ukrainian": "україни",
    "russian (stemmed on PG)": "удары",
}
FILTERED = ("common word + label + since", "ukraine", {"label": "ukraine-security"})


def _time(fn: Any, repeats: int) -> dict[str, float]:
    fn()  # warm: plan caches, pages in the OS cache
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[max(0, round(0.95 * len(samples)) - 1)], 2),
    }


def query_latency(repeats: int) -> dict[str, Any]:
    from worker import operations
    from worker.store import ArticleFilter

    results: dict[str, Any] = {}
    since = datetime(2025, 1, 1, tzinfo=UTC)

    def listing(**filters: Any) -> Any:
        return lambda: operations.list_articles(ArticleFilter(**filters), limit=50)

    results["no search (newest 50)"] = _time(listing(), repeats)
    for name, query in QUERIES.items():
        items, after = operations.list_articles(ArticleFilter(query=query), limit=50)
        results[name] = {
            "q": query,
            "first_page": len(items),
            **_time(listing(query=query), repeats),
        }
        if after is not None:  # the second page, from the first page's cursor
            results[name]["next_page"] = _time(
                lambda q=query, a=after: operations.list_articles(
                    ArticleFilter(query=q), limit=50, after=a
                ),
                repeats,
            )
    name, query, filters = FILTERED
    results[name] = {"q": query, **_time(listing(query=query, since=since, **filters), repeats)}
    return results


def matches(url: str) -> dict[str, int]:
    """How many articles each query finds (the work a ranked first page costs)."""
    from worker import store
    from worker.db import session_scope
    from worker.store import ArticleFilter

    with session_scope(url) as session:
        return {
            name: len(store.list_articles(session, where=ArticleFilter(query=q), limit=10**9))
            for name, q in QUERIES.items()
        }


def records(pool: Any, start: int, n: int) -> list[Any]:
    """``n`` new articles as the pipeline would store them (fingerprinted and classified
    here, outside the timing), each with a body of its own."""
    from worker import dedup, store
    from worker.classify import classify

    full, short = pool
    out = []
    for i in range(start, start + n):
        title, body, language = full[i % len(full)] if i % 2 else short[i % len(short)]
        body = f"{body}\nDispatch {i}."
        published = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(minutes=i)
        out.append(
            store.ArticleRecord(
                url=f"https://w{i % 89}.example/write/{i}",
                canonical_url=f"https://w{i % 89}.example/write/{i}",
                feed_id=None,
                guid=None,
                title=title,
                body=body,
                summary=None,
                author=None,
                published_at=published,
                language=language,
                extraction_method="trafilatura",
                fingerprint=dedup.fingerprint(title=title, body=body, published_at=published),
                classification=classify(title=title, body=body, language=language),
            )
        )
    return out


def store_ms(batch: list[Any]) -> list[float]:
    """Milliseconds of each ``store.save_article``, each in its own transaction."""
    from worker import store
    from worker.db import session_scope

    samples = []
    for record in batch:
        t0 = time.perf_counter()
        with session_scope() as session:
            store.save_article(session, record)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def _migration_0004() -> Any:
    """The migration module (its SQLite trigger DDL), loaded from its file."""
    import importlib.util

    path = REPO_ROOT / "worker" / "migrations" / "versions" / "0004_article_search.py"
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_index_maintenance(url: str, *, on: bool) -> None:
    """Switch the triggers that keep the index on or off, between timed blocks.

    Off, SQLite writes no FTS5 rows; PostgreSQL computes no vector and the GIN index
    gets only a NULL entry, so the difference slightly understates its full cost.
    """
    from worker.db import get_engine

    with get_engine(url).begin() as connection:
        if _is_pg(url):
            verb = "ENABLE" if on else "DISABLE"
            connection.execute(
                sa.text(f"ALTER TABLE articles {verb} TRIGGER articles_search_vector_refresh")
            )
        else:
            for name in ("insert", "update", "delete"):
                connection.execute(sa.text(f"DROP TRIGGER IF EXISTS articles_fts_{name}"))
            if on:
                for trigger in _migration_0004()._SQLITE_TRIGGERS:
                    connection.execute(sa.text(trigger))


def write_overhead(url: str, writes: list[Any], block: int) -> dict[str, Any]:
    """Store the articles in blocks of ``block``, the index maintained in every other
    block (in the order on-off, off-on, ... so drift in the host's speed falls on both)."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for i, start in enumerate(range(0, len(writes), block)):
        state = i % 4 in (0, 3)  # on, off, off, on, on, off, ...
        set_index_maintenance(url, on=state)
        times[state] += store_ms(writes[start : start + block])
    set_index_maintenance(url, on=True)
    summary: dict[str, Any] = {}
    for state, label in ((False, "without_index"), (True, "with_index")):
        summary[f"store_ms_{label}"] = {
            "n": len(times[state]),
            "median": round(statistics.median(times[state]), 2),
            "mean": round(statistics.mean(times[state]), 2),
        }
    summary["ratio_of_medians"] = round(
        statistics.median(times[True]) / statistics.median(times[False]), 3
    )
    summary["ratio_of_means"] = round(
        statistics.mean(times[True]) / statistics.mean(times[False]), 3
    )
    return summary


def _before_search(url: str) -> str:
    """The revision before the search index (migration 0004)."""
    from alembic.script import ScriptDirectory

    from worker import migrate

    before = ScriptDirectory.from_config(migrate.alembic_config(url)).get_revision("0004")
    assert before is not None
    assert isinstance(before.down_revision, str)
    return before.down_revision


def run_database(url: str, args: argparse.Namespace, pool: Any) -> dict[str, Any]:
    from worker import migrate
    from worker.db import dispose_engines, get_engine
    from worker.settings import reset_settings

    os.environ["INGEST_DATABASE_URL"] = url
    reset_settings()
    dispose_engines()
    before_search = _before_search(url)
    migrate.upgrade(url, before_search)
    t0 = time.monotonic()
    seed(url, args.articles, pool, args.full_share)
    seed_s = time.monotonic() - t0
    migration_s = []
    for again in (False, True):
        if again:
            migrate.downgrade(url, before_search)
        t0 = time.monotonic()
        migrate.upgrade(url)
        migration_s.append(time.monotonic() - t0)
        dispose_engines()

    engine = get_engine(url)
    autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with autocommit as connection:  # fresh statistics, as autovacuum would leave them
        connection.execute(sa.text("VACUUM ANALYZE articles" if _is_pg(url) else "ANALYZE"))
    result: dict[str, Any] = {
        "articles": args.articles,
        "seed_seconds": round(seed_s, 1),
        "migration_seconds": [round(s, 2) for s in migration_s],
        "index_mb": index_mb(url),
        "matches": matches(url),
        "query_latency": query_latency(args.repeats),
    }
    if _is_pg(url):
        result["plan"] = explain(url, QUERIES["common word"])
    writes = records(pool, args.articles + 1, 2 * args.writes)
    result["writes"] = write_overhead(url, writes, args.block)
    dispose_engines()
    return result


def index_mb(url: str) -> dict[str, float]:
    """What the search index occupies, next to the articles' text it indexes (MB).

    PostgreSQL: the ``search_vector`` column's values and the GIN index. SQLite: the
    pages of FTS5's shadow tables (``dbstat``), or, where SQLite was built without it,
    the ``articles_fts`` data read back (a lower bound)."""
    from worker.db import get_engine

    mb = 2**20
    with get_engine(url).connect() as connection:
        text = connection.execute(
            sa.text("SELECT sum(length(title) + coalesce(length(summary), 0) + length(body))"
                    " FROM articles")
        ).scalar_one()  # fmt: skip
        if _is_pg(url):
            column = connection.execute(
                sa.text("SELECT sum(pg_column_size(search_vector)) FROM articles")
            ).scalar_one()
            gin = connection.execute(
                sa.text("SELECT pg_relation_size('ix_articles_search')")
            ).scalar_one()
            return {
                "text": round(text / mb, 1),
                "search_vector": round(column / mb, 1),
                "gin_index": round(gin / mb, 1),
            }
        try:
            shadow = connection.execute(
                sa.text("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'articles_fts%'")
            ).scalar_one()
        except sa.exc.OperationalError:
            shadow = connection.execute(
                sa.text("SELECT sum(length(block)) FROM articles_fts_data")
            ).scalar_one()
        return {"text": round(text / mb, 1), "fts5_tables": round((shadow or 0) / mb, 1)}


def _is_pg(url: str) -> bool:
    return url.startswith("postgresql")


def explain(url: str, query: str) -> list[str]:
    """EXPLAIN ANALYZE of the listing's own SQL for ``query``."""
    from worker import operations
    from worker.db import get_engine
    from worker.store import ArticleFilter

    engine = get_engine(url)
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "search_vector" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        operations.list_articles(ArticleFilter(query=query), limit=50)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = seen[0]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN ANALYZE {statement}", parameters).all()
    return [str(r[0]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--writes", type=int, default=500, help="store.save_article per state")
    parser.add_argument("--block", type=int, default=10, help="writes between switches")
    parser.add_argument("--repeats", type=int, default=30, help="runs per query")
    parser.add_argument("--full-share", type=float, default=0.5)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)

    from tests.support import services

    pool = text_pool(args.data_dir)
    out: dict[str, Any] = {"date": datetime.now(UTC).date().isoformat(), "args": vars(args)}
    out["args"]["data_dir"] = str(args.data_dir)
    workdir = Path(tempfile.mkdtemp(prefix="bench-search-"))
    out["sqlite"] = run_database(f"sqlite:///{workdir / 'bench.db'}", args, pool)
    if not args.sqlite_only:
        pg = services.start_postgres()
        try:
            out["postgresql"] = run_database(pg.create_database("search"), args, pool)
        finally:
            pg.stop()
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
