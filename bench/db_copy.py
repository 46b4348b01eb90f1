"""How long does ``ingest db copy`` take to move a real SQLite database to PostgreSQL,
and does the move lose or change anything while workers keep writing?

Why: the embedded SQLite default is where most deployments start, and ``ingest db
copy`` is the documented way out (docs/operations.md). An operator needs to know
whether the move takes minutes or hours, and that the second run (after the workers
stop) is short.

It builds a source database through the store path the pipeline uses (real
classification, fingerprints, dedup into stories and LSH bands, feeds, entries, polls,
a re-crawl request; :func:`build_source`) from the labelled news text in
``../shared/data``, starts a throwaway PostgreSQL cluster, and runs the copy the way
docs/operations.md says: once while a writer thread keeps storing articles in the
source (the live run, 20 articles/s by default, ``--write-rate``), then again after the
writer stops (the catch-up run), then once more with nothing changed (the floor: every
row is still read and compared). All are verified by the command's own counts and
SHA-256, and the bench also compares every row of every table itself.

    python -m bench.db_copy                    # 10,000 articles
    python -m bench.db_copy --articles 50000
    python -m bench.run --fetches 12000 --skip-baseline --keep-db /tmp/pipeline.db
    python -m bench.db_copy --source /tmp/pipeline.db   # a database the real pipeline made

The test suite runs the same builder and copy on a smaller database
(``tests/integration/test_db_copy.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import DEFAULT_DATA_DIR, load_items  # noqa: E402
from worker import dedup, migrate, store  # noqa: E402
from worker.backup import backup_database  # noqa: E402
from worker.classify import classify  # noqa: E402
from worker.db import session_scope  # noqa: E402
from worker.feeds import FeedItem, entry_key  # noqa: E402
from worker.models import FeedPoll  # noqa: E402

START = datetime(2025, 3, 1, tzinfo=UTC)
Text = tuple[str, str, str]


def texts(data_dir: Path) -> list[Text]:
    """(title, body, language) of every labelled item with text: feed items, full
    articles, Ukrainian and Russian posts."""
    return [(i.title, i.body, i.language) for i in load_items(data_dir) if i.body.strip()]


def article_record(i: int, text: Text, feed_id: int) -> store.ArticleRecord:
    """Article ``i`` as the pipeline would store it: classified and fingerprinted."""
    title, body, language = text
    published = START + timedelta(hours=i)
    url = f"https://outlet{i % 13}.example/news/{i}"
    return store.ArticleRecord(
        url=url,
        canonical_url=url,
        feed_id=feed_id,
        guid=f"guid-{i}",
        title=title,
        body=body,
        summary=body[:200],
        author=None,
        published_at=published,
        language=language,
        extraction_method="trafilatura",
        fingerprint=dedup.fingerprint(title=title, body=body, published_at=published),
        classification=classify(title=title, body=body, language=language),
    )


def build_source(url: str, pool: list[Text], articles: int) -> list[int]:
    """A database as the pipeline leaves it; the feed ids.

    Every 6th article is a syndicated copy of the one before (same text, another
    outlet: it joins that story), every 50th is re-titled later (title history), each
    has its feed entry, and the feeds have polls and a re-crawl request."""
    migrate.upgrade(url)
    with session_scope(url) as session:
        feeds = [
            store.upsert_feed(session, name=f"feed-{k}", url=f"https://outlet{k}.example/rss",
                              language="en", tags=["copy"])[0]
            for k in range(3)
        ]  # fmt: skip
        feed_ids = [feed.id for feed in feeds if feed.id is not None]
    saved: list[tuple[int, int, int]] = []
    for i in range(articles):
        text = pool[(i - 1 if i % 6 == 5 else i) % len(pool)]
        with session_scope(url) as session:
            outcome = store.save_article(session, article_record(i, text, feed_ids[i % 3]))
        saved.append((i, outcome.article_id, feed_ids[i % 3]))
    with session_scope(url) as session:
        for i, _, feed_id in saved[::50]:
            title, body, language = pool[i % len(pool)]
            store.save_article(
                session, article_record(i, (f"{title} (updated)", body, language), feed_id)
            )
        for i, article_id, feed_id in saved:
            item = FeedItem(entry_key=entry_key(guid=f"guid-{i}", url=f"u{i}", title="t"),
                            url=f"https://outlet{i % 13}.example/news/{i}", guid=f"guid-{i}",
                            title="t", summary=None, author=None, published_at=None)  # fmt: skip
            (entry_id,) = store.add_entries(session, feed_id=feed_id, items=[item])
            store.mark_entry_stored(session, entry_id=entry_id, article_id=article_id)
        for k, feed_id in enumerate(feed_ids):
            for n in range(20):
                store.add_poll(session, FeedPoll(feed_id=feed_id, status="ok", http_status=200,
                                                 started_at=START + timedelta(hours=n + k),
                                                 entries_seen=30, entries_new=n))  # fmt: skip
        store.create_crawl_request(
            session, requested_by="ops", kind="feed", target="feed-1", force=True
        )
    return feed_ids


class Writer(threading.Thread):
    """Keeps storing new articles in the source, as a running worker would."""

    def __init__(
        self, url: str, pool: list[Text], first: int, feed_id: int, per_second: float
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.pool, self.next, self.feed_id = url, pool, first, feed_id
        self.pause = 1 / per_second
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        while not self.stop.wait(self.pause):
            text = self.pool[self.next % len(self.pool)]
            with session_scope(self.url) as session:
                store.save_article(session, article_record(self.next, text, self.feed_id))
            self.next += 1
            self.written += 1


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as Python values, in key order: what "identical" means
    without trusting the copy's own checksums."""
    import sqlalchemy as sa

    from worker.db import make_engine
    from worker.store.copy import copyable_tables

    def plain(value: Any) -> Any:
        if isinstance(value, memoryview | bytearray):
            return bytes(value)
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True)
        return value

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    tuple(plain(v) for v in row)
                    for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
                ]
                for table in copyable_tables()
            }
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import services
    from worker import database_ops

    workdir = Path(tempfile.mkdtemp(prefix="bench-db-copy-"))
    source = f"sqlite:///{workdir / 'source.db'}"
    pool = texts(args.data_dir)
    t0 = time.monotonic()
    if args.source is not None:
        # A database the real pipeline made (bench.run --keep-db): copy it, then write on.
        backup_database(f"sqlite:///{args.source}", workdir / "source.db")
        with session_scope(source) as session:
            feed_ids = [feed.id for feed in store.list_feeds(session) if feed.id is not None]
    else:
        feed_ids = build_source(source, pool, args.articles)
    build_s = time.monotonic() - t0
    pg = services.start_postgres()
    try:
        target = pg.create_database("copy")
        writer = Writer(source, pool, args.articles + 1, feed_ids[0], args.write_rate)
        writer.start()
        t0 = time.monotonic()
        live = database_ops.copy_database(target, source_url=source)
        live_s = time.monotonic() - t0
        writer.stop.set()
        writer.join()
        t0 = time.monotonic()
        final = database_ops.copy_database(target, source_url=source)
        final_s = time.monotonic() - t0
        t0 = time.monotonic()
        again = database_ops.copy_database(target, source_url=source)
        again_s = time.monotonic() - t0
        rows_equal = snapshot(source) == snapshot(target)
        articles = {t.table: t for t in final.tables}["articles"]
        return {
            "articles": articles.source_rows,
            "rows": sum(t.source_rows for t in final.tables),
            "source_mb": round((workdir / "source.db").stat().st_size / 2**20, 1),
            "source": "pipeline (bench.run)" if args.source else "store path",
            "build_seconds": round(build_s, 1),
            "live_copy_seconds": round(live_s, 1),
            "live_rows_per_second": round(sum(t.source_rows for t in live.tables) / live_s),
            "written_during_live_copy": writer.written,
            "catch_up_seconds": round(final_s, 1),
            "catch_up_inserted": sum(t.inserted for t in final.tables),
            "catch_up_updated": sum(t.updated for t in final.tables),
            "unchanged_run_seconds": round(again_s, 1),
            "unchanged_run_writes": sum(t.inserted + t.updated + t.deleted for t in again.tables),
            "identical_by_sha256": final.identical and again.identical,
            "identical_row_for_row": rows_equal,
        }
    finally:
        pg.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--source", type=Path, default=None,
        help="copy this SQLite database (one bench.run --keep-db made) instead of building one",
    )  # fmt: skip
    parser.add_argument(
        "--write-rate", type=float, default=20.0,
        help="articles/s the source's writer stores during the live copy",
    )  # fmt: skip
    result = run(parser.parse_args(argv))
    print(json.dumps(result, indent=2))
    return 0 if result["identical_by_sha256"] and result["identical_row_for_row"] else 1


if __name__ == "__main__":
    sys.exit(main())
