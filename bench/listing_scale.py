"""What does the unsearched newest-first `/articles` page cost at scale, with and
without the index for it (``ix_articles_newest``, migration 0007)?

Why: ``GET /articles`` and ``ingest articles`` list newest first by
``coalesce(published_at, created_at)``, then id. Without an index on that expression
every page sorts the whole table (issue #20). This seeds N articles of real text (the
pool of ``bench.reclassify_scale``) at the migration before 0007, shaped like a real
table: a tenth without a publication date, timestamps shared by runs of four articles,
a quarter labelled ``ukraine-security``. It then times the migration (the index build)
and, in R alternating rounds, with the index and without it,

- ``operations.list_articles`` (what the API and the CLI run, 50 rows): the first page,
  the second from the first's cursor, a page from a cursor halfway down the table, the
  first page of ``label=ukraine-security``, the same halfway down, and the last week;
- ``operations.read_changes`` (``GET /changes``, 100 changes) from the start and from
  halfway down the log, for comparison;

and the store path (``store.save_article``) in alternating blocks with and without the
index. Each round runs in a fresh process; "without" is this code with the index
dropped, or, given ``--before-tree DIR`` (a checkout of the code before the index, e.g.
``git archive b10a5b0 worker | tar -x -C DIR``), that code, so its OR-form cursor is
timed too. ``--positive-share`` sets how many articles the label filter finds;
``--key-index-only`` leaves the label's and feed's indexes out of the "with" state, to
see what they buy a filtered page and cost the store path.

    python -m bench.listing_scale --articles 100000 --before-tree /tmp/before
    python -m bench.listing_scale --articles 5000 --rounds 2 --repeats 5 --writes 0 --sqlite-only

Prints JSON. Needs ``../shared/data`` and the PostgreSQL binaries the test suite uses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE = datetime(2026, 1, 1, tzinfo=UTC)
SEED_BATCH = 2_000
KEY = "coalesce(published_at, created_at) DESC, id DESC"
INDEX, LABEL_INDEX = "ix_articles_newest", "ix_articles_label_newest"  # migration 0007
FEED_INDEX = "ix_articles_feed_newest"
FEEDS = 50  # "big" has every fifth article, the other 49 share the rest
DDL = {
    INDEX: f"CREATE INDEX {INDEX} ON articles ({KEY})",
    LABEL_INDEX: f"CREATE INDEX {LABEL_INDEX} ON articles (is_ukraine_security, {KEY})",
    FEED_INDEX: f"CREATE INDEX {FEED_INDEX} ON articles (feed_id, {KEY})",
}


# --- timing: runs in a child process, against the tree under test -----------------------


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
    }


def time_cases(deep: tuple[datetime, int], repeats: int) -> dict[str, list[float]]:
    """Milliseconds of each case, ``repeats`` times after one warm call; the code is
    whichever ``worker`` package is first on the path."""
    from worker import operations
    from worker.store import ArticleFilter

    week = ArticleFilter(since=BASE - timedelta(days=7))
    positive = ArticleFilter(label="ukraine-security")
    big = ArticleFilter(feed="big")
    _, second = operations.list_articles(ArticleFilter(), limit=50)
    head = operations.read_changes(after=0, limit=1).head
    cases: dict[str, Any] = {
        "newest 50": lambda: operations.list_articles(ArticleFilter(), limit=50),
        "second page": lambda: operations.list_articles(ArticleFilter(), limit=50, after=second),
        "halfway page": lambda: operations.list_articles(ArticleFilter(), limit=50, after=deep),
        "label": lambda: operations.list_articles(positive, limit=50),
        "label, halfway": lambda: operations.list_articles(positive, limit=50, after=deep),
        "feed (a fifth)": lambda: operations.list_articles(big, limit=50),
        "feed, halfway": lambda: operations.list_articles(big, limit=50, after=deep),
        "last 7 days": lambda: operations.list_articles(week, limit=50),
        "/changes from 0": lambda: operations.read_changes(after=0, limit=100),
        "/changes halfway": lambda: operations.read_changes(after=head // 2, limit=100),
    }
    out: dict[str, list[float]] = {}
    for name, call in cases.items():
        call()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            samples.append((time.perf_counter() - t0) * 1000)
        out[name] = samples
    return out


def _child(args: argparse.Namespace) -> int:
    deep = (datetime.fromisoformat(args.deep_key), args.deep_id)
    print(json.dumps(time_cases(deep, args.repeats)))
    return 0


# --- seeding and the rounds: the parent process -------------------------------------------


def seed(url: str, n: int, pool: Any, positive_share: float) -> None:
    """Bulk-insert ``n`` articles, one story each, older as ids grow; every
    ``1 / positive_share``-th labelled ``ukraine-security``; every fifth from the feed
    ``big``, the rest spread over FEEDS - 1 others."""
    from bench.corpus import BulkWriter
    from worker import store
    from worker.db import session_scope
    from worker.models import Article, Story
    from worker.store.sql import table_of

    with session_scope(url) as session:
        feeds = [
            store.upsert_feed(session, name=name, url=f"https://{name}.example/rss")[0].id
            for name in ["big", *(f"feed{k}" for k in range(1, FEEDS))]
        ]
    full, short = pool
    every = round(1 / positive_share)
    writer = BulkWriter(url)
    stories: list[dict[str, Any]] = []
    articles: list[dict[str, Any]] = []

    def flush() -> None:
        writer.write_many([(table_of(Story), stories), (table_of(Article), articles)])
        stories.clear()
        articles.clear()

    for i in range(1, n + 1):
        title, body, language = full[i % len(full)] if i % 2 == 0 else short[i % len(short)]
        published = BASE - timedelta(minutes=i // 4)  # runs of four share a timestamp
        created = published + timedelta(minutes=30)
        stories.append({"id": i, "title": title, "first_seen_at": created,
                        "last_seen_at": created, "article_count": 1, "source_count": 1,
                        "is_ukraine_security": False, "security_score": 0.0, "topics": [],
                        "created_at": created, "updated_at": created})  # fmt: skip
        link = f"https://s{i % 97}.example/{i}"
        articles.append({"id": i, "url": link, "canonical_url": link, "title": title,
                         "title_history": [], "body": body, "language": language,
                         "published_at": None if i % 10 == 3 else published,
                         "fetched_at": created, "extraction_method": "trafilatura",
                         "content_hash": f"{i:064x}", "story_id": i,
                         "is_ukraine_security": i % every == 0, "security_score": 0.0,
                         "topics": [], "evidence": {}, "classifier_version": "bench",
                         "created_at": created, "updated_at": created,
                         "feed_id": feeds[0 if i % 5 == 0 else 1 + i % (FEEDS - 1)]})  # fmt: skip
        if len(articles) >= SEED_BATCH:
            flush()
    if articles:
        flush()
    writer.finish(analyze=False)  # explicit ids were inserted: move the sequences on


def synthetic_pool() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Stand-in text of the real pool's shape (long articles, short feed items), for a
    smoke run that should not spend its seconds loading the data sets."""
    words = ["kyiv", "drones", "ceasefire", "talks", "aid", "grain", "port", "energy", "sea", "oil"]
    full = [(f"Report {i}", " ".join(words[(i + j) % 10] for j in range(600)), "en")
            for i in range(20)]  # fmt: skip
    short = [(f"Item {i}", " ".join(words[(i + j) % 10] for j in range(40)), "en")
             for i in range(20)]  # fmt: skip
    return full, short


def set_index(url: str, *, on: bool, filter_indexes: bool = True) -> None:
    """Create or drop migration 0007's indexes. PostgreSQL's statistics are then
    refreshed, as autovacuum would; SQLite is left without any, as it is in service
    (nothing runs ANALYZE), which is what makes it choose the label index's plan."""
    import sqlalchemy as sa

    from worker.db import get_engine

    with get_engine(url).begin() as connection:
        for name, ddl in DDL.items():
            connection.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
            if on and (filter_indexes or name == INDEX):
                connection.execute(sa.text(ddl))
        if _is_pg(url):
            connection.execute(sa.text("ANALYZE articles"))


def halfway_key(url: str) -> tuple[datetime, int]:
    """The (sort key, id) of the article halfway down the newest-first order."""
    import sqlalchemy as sa

    from worker.db import session_scope
    from worker.models import Article, article_sort_time

    ident = Article.__table__.c.id  # type: ignore[attr-defined]
    with session_scope(url) as session:
        total = session.execute(sa.select(sa.func.count()).select_from(Article)).scalar_one()
        key, article_id = session.execute(
            sa.select(article_sort_time(), ident)
            .order_by(article_sort_time().desc(), ident.desc())
            .offset(total // 2)
            .limit(1)
        ).one()
    return key, int(article_id)


def run_round(url: str, tree: Path, deep: tuple[datetime, int], repeats: int) -> Any:
    env = {**os.environ, "INGEST_DATABASE_URL": url, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--tree", str(tree), "--deep-key",
         deep[0].isoformat(), "--deep-id", str(deep[1]), "--repeats", str(repeats)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def explain(url: str) -> dict[str, list[str]]:
    """The plans of the listing's own SQL (new code, index present): first page, a
    cursor page, a label page from a cursor."""
    import sqlalchemy as sa

    from worker import operations
    from worker.db import get_engine
    from worker.store import ArticleFilter

    engine = get_engine(url)
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM articles" in statement and "ORDER BY" in statement:
            seen.append((statement, parameters))

    deep = halfway_key(url)
    calls = {
        "newest 50": (ArticleFilter(), None),
        "halfway page": (ArticleFilter(), deep),
        "label, halfway": (ArticleFilter(label="ukraine-security"), deep),
        "feed, halfway": (ArticleFilter(feed="big"), deep),
    }
    plans: dict[str, list[str]] = {}
    prefix = "EXPLAIN ANALYZE " if _is_pg(url) else "EXPLAIN QUERY PLAN "
    for name, (where, after) in calls.items():
        seen.clear()
        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            operations.list_articles(where, limit=50, after=after)
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)
        statement, parameters = seen[-1]
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(prefix + statement, parameters).all()
        plans[name] = [str(r[-1]) for r in rows]
    return plans


def write_overhead(
    url: str, n: int, block: int, pool: Any, start: int, *, filter_indexes: bool
) -> dict[str, Any]:
    """``store.save_article`` per article, the index present in every other block
    (on, off, off, on, ... so drift in the host's speed falls on both)."""
    from bench.search_scale import records, store_ms

    writes = records(pool, start, 2 * n)
    times: dict[bool, list[float]] = {True: [], False: []}
    for i, first in enumerate(range(0, len(writes), block)):
        state = i % 4 in (0, 3)
        set_index(url, on=state, filter_indexes=filter_indexes)
        times[state] += store_ms(writes[first : first + block])
    set_index(url, on=True, filter_indexes=filter_indexes)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {
        "store_ms_with_index": round(on, 2),
        "store_ms_without_index": round(off, 2),
        "ratio_of_medians": round(on / off, 3),
        "n_each": len(times[True]),
    }


def run_database(url: str, args: argparse.Namespace, pool: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    from worker import migrate, operations
    from worker.db import dispose_engines, get_engine
    from worker.settings import reset_settings

    os.environ["INGEST_DATABASE_URL"] = url
    reset_settings()
    dispose_engines()
    migrate.upgrade(url, "0006")
    t0 = time.monotonic()
    seed(url, args.articles, pool, args.positive_share)
    result: dict[str, Any] = {"seed_seconds": round(time.monotonic() - t0, 1)}
    t0 = time.monotonic()
    migrate.upgrade(url)
    result["migration_0007_seconds"] = round(time.monotonic() - t0, 2)
    dispose_engines()
    if _is_pg(url):
        size = sa.text("SELECT pg_relation_size(:name)")
        with get_engine(url).connect() as connection:
            sizes = {name: connection.execute(size, {"name": name}).scalar_one() for name in DDL}
        result["index_mb"] = {name: round(b / 2**20, 1) for name, b in sizes.items()}
    t0 = time.monotonic()
    operations.read_changes(after=0, limit=1)  # numbers the seed's changes, once
    result["sequence_changes_seconds"] = round(time.monotonic() - t0, 1)
    deep = halfway_key(url)
    trees = {"with index": REPO_ROOT, "without index": args.before_tree or REPO_ROOT}
    samples: dict[str, dict[str, list[float]]] = {state: {} for state in trees}
    for i in range(args.rounds):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))
        for state in order:
            set_index(url, on=state == "with index", filter_indexes=args.filter_indexes)
            for case, values in run_round(url, trees[state], deep, args.repeats).items():
                samples[state].setdefault(case, []).extend(values)
    set_index(url, on=True, filter_indexes=args.filter_indexes)
    result["latency"] = {
        case: {state: _percentiles(samples[state][case]) for state in trees}
        for case in samples["with index"]
    }
    result["plans"] = explain(url)
    if args.writes:
        result["writes"] = write_overhead(
            url,
            args.writes,
            args.block,
            pool,
            args.articles + 1,
            filter_indexes=args.filter_indexes,
        )
    dispose_engines()
    return result


def _is_pg(url: str) -> bool:
    return url.startswith("postgresql")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per state")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per case a round")
    parser.add_argument("--writes", type=int, default=200, help="store.save_article per state")
    parser.add_argument("--block", type=int, default=20, help="writes between switches")
    parser.add_argument("--before-tree", type=Path, help="code before the index, for 'without'")
    parser.add_argument("--positive-share", type=float, default=0.25, help="labelled share")
    parser.add_argument(
        "--key-index-only",
        dest="filter_indexes",
        action="store_false",
        help="without the label and feed indexes",
    )
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--deep-key", help=argparse.SUPPRESS)
    parser.add_argument("--deep-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument(
        "--synthetic-text", action="store_true", help="made-up text, no data (a smoke run)"
    )
    args = parser.parse_args(argv)
    # The child imports `worker` from the tree under test; the parent from this repo.
    sys.path.insert(0, str(args.tree if args.child else REPO_ROOT))
    if args.child:
        return _child(args)

    from tests.support import services

    if args.synthetic_text:
        pool = synthetic_pool()
    else:
        from bench.reclassify_scale import text_pool
        from eval.classifier_eval import DEFAULT_DATA_DIR

        pool = text_pool(args.data_dir or DEFAULT_DATA_DIR)
    out: dict[str, Any] = {"date": datetime.now(UTC).date().isoformat()}
    out["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as workdir:  # ~0.5 GB at 100k
        out["sqlite"] = run_database(f"sqlite:///{Path(workdir) / 'bench.db'}", args, pool)
    if not args.sqlite_only:
        pg = services.start_postgres()
        try:
            out["postgresql"] = run_database(pg.create_database("listing"), args, pool)
        finally:
            pg.stop()
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
