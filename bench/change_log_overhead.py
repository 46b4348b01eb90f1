"""What does the change log cost the store path? (issue #19: the change feed)

Two databases migrated to head; in one the change-log triggers are dropped (the store
path as it was before migration 0003). The same articles are stored in both through
``store.save_article`` (one transaction each: an article insert, its story's insert or
update, its band keys; half of them copies that join an earlier story) and feeds are
updated as a poll's outcome is, alternating between the two databases round by round
so drift in the host's speed moves both alike. Then the log is numbered
(``changefeed.sequence_pending``) and read back page by page with the rows
(``changefeed.read_page``), which only the database with the log does.

    python -m bench.change_log_overhead                 # SQLite
    python -m bench.change_log_overhead --postgres      # and PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from worker import changefeed, dedup, migrate, store
from worker.classify import classify
from worker.db import dispose_engines, get_engine, session_scope
from worker.models import Feed, utcnow
from worker.settings import reset_settings

ROUNDS = 10
ARTICLES_PER_ROUND = 60
FEEDS = 50
UPDATE_BLOCKS = 20
UPDATES_PER_BLOCK = 100
VOCAB = 20_000


def _records(rng: random.Random, n: int, tag: str) -> list[store.ArticleRecord]:
    """``n`` records: even ones new, odd ones a copy of the one before (a word changed)."""
    out: list[store.ArticleRecord] = []
    body = ""
    published = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        if i % 2 == 0:
            words = [f"w{rng.randrange(VOCAB)}" for _ in range(150)]
        else:
            words = body.split()
            words[rng.randrange(len(words))] = "edited"
        body, title = " ".join(words), " ".join(words[:8])
        url = f"https://bench.example/{tag}/{i}"
        out.append(
            store.ArticleRecord(
                url=url, canonical_url=url, feed_id=None, guid=None, title=title, body=body,
                summary=None, author=None, published_at=published, language="en",
                extraction_method="trafilatura",
                fingerprint=dedup.fingerprint(title=title, body=body, published_at=published),
                classification=classify(title=title, body=body, language="en"),
            )
        )  # fmt: skip
    return out


def _drop_triggers(url: str) -> None:
    engine = get_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        for kind, table in (("article", "articles"), ("story", "stories"), ("feed", "feeds")):
            for event in ("insert", "update", "delete"):
                on = f" ON {table}" if postgres else ""
                connection.execute(sa.text(f"DROP TRIGGER change_log_{kind}_{event}{on}"))


def _store_one(url: str, record: store.ArticleRecord, feed_id: int) -> float:
    """Seconds to store ``record`` and then one feed's poll outcome, as the workers do."""
    started = time.perf_counter()
    with session_scope(url) as session:
        store.save_article(session, record)
    with session_scope(url) as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        feed.last_polled_at = feed.last_success_at = feed.updated_at = utcnow()
        feed.error_count = 0
        session.add(feed)
    return time.perf_counter() - started


def _feed_updates(url: str, feed_ids: list[int], n: int) -> float:
    """Seconds for ``n`` one-row feed updates, one transaction each: a logged row's
    cost with nothing else around it (the trigger's insert into change_log)."""
    engine = get_engine(url)
    statement = sa.text("UPDATE feeds SET error_count = error_count + 1 WHERE id = :id")
    started = time.perf_counter()
    for i in range(n):
        with engine.begin() as connection:
            connection.execute(statement, {"id": feed_ids[i % len(feed_ids)]})
    return time.perf_counter() - started


def measure(urls: dict[str, str], seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    feed_ids: dict[str, list[int]] = {}
    for variant, url in urls.items():
        migrate.upgrade(url)
        with session_scope(url) as session:
            feeds = [
                store.upsert_feed(session, name=f"f{n}", url=f"https://f{n}.example/")[0]
                for n in range(FEEDS)
            ]
            feed_ids[variant] = [int(f.id or 0) for f in feeds]
    _drop_triggers(urls["without"])
    # Each article is stored in both databases back to back, in alternating order, so
    # both see the same moment of a busy host; a round's figure is its mean per save.
    per_save: dict[str, list[float]] = {variant: [] for variant in urls}
    for r in range(ROUNDS):
        records = _records(rng, ARTICLES_PER_ROUND, f"r{r}")
        spent = dict.fromkeys(urls, 0.0)
        for n, record in enumerate(records):
            for variant in list(urls) if n % 2 == 0 else list(reversed(urls)):
                spent[variant] += _store_one(urls[variant], record, feed_ids[variant][n % FEEDS])
        for variant, seconds in spent.items():
            per_save[variant].append(seconds / len(records) * 1000)

    update_us: dict[str, list[float]] = {variant: [] for variant in urls}
    for block in range(UPDATE_BLOCKS):
        for variant in list(urls) if block % 2 == 0 else list(reversed(urls)):
            seconds = _feed_updates(urls[variant], feed_ids[variant], UPDATES_PER_BLOCK)
            update_us[variant].append(seconds / UPDATES_PER_BLOCK * 1_000_000)

    # Numbering and reading, on the database that has the log (all rounds pending);
    # the feed's functions use the configured database.
    os.environ["INGEST_DATABASE_URL"] = urls["with"]
    reset_settings()
    with session_scope(urls["with"]) as session:
        pending = session.execute(sa.text("SELECT count(*) FROM change_log")).scalar_one()
    started = time.perf_counter()
    changefeed.sequence_pending()
    sequence_s = time.perf_counter() - started
    with session_scope(urls["with"]) as session:
        _, head = store.change_log_bounds(session)
    started, after, read = time.perf_counter(), 0, 0
    while after < head:
        page = changefeed.read_page(after=after, limit=500)
        read += len(page.changes)
        after = page.next
    read_s = time.perf_counter() - started
    with_ms = statistics.median(per_save["with"])
    without_ms = statistics.median(per_save["without"])
    return {
        "saves_per_variant": ROUNDS * ARTICLES_PER_ROUND,
        "store_ms_with_log": round(with_ms, 3),
        "store_ms_without_log": round(without_ms, 3),
        "ratio": round(with_ms / without_ms, 3),
        "rounds_ms": [
            (round(a, 2), round(b, 2))
            for a, b in zip(per_save["with"], per_save["without"], strict=True)
        ],
        "median_round_ratio": round(
            statistics.median(
                a / b for a, b in zip(per_save["with"], per_save["without"], strict=True)
            ),
            3,
        ),
        "feed_update_us_with_log": round(statistics.median(update_us["with"]), 1),
        "feed_update_us_without_log": round(statistics.median(update_us["without"]), 1),
        "log_rows_pending": pending,
        "positions": head,
        "sequence_ms_per_1000_rows": round(sequence_s / max(pending, 1) * 1_000_000, 1),
        "read_ms_per_1000_changes": round(read_s / max(read, 1) * 1_000_000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="Also run on PostgreSQL.")
    parser.add_argument("--json", type=Path, help="Write results here as JSON.")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="change-log-bench-"))
    targets: list[tuple[str, dict[str, str]]] = [
        ("sqlite", {v: f"sqlite:///{workdir / f'{v}.db'}" for v in ("with", "without")})
    ]
    pg = None
    if args.postgres:
        from tests.support.services import start_postgres

        pg = start_postgres()
        targets.append(
            ("postgresql", {v: pg.create_database(f"change_log_{v}") for v in ("with", "without")})
        )
    try:
        for backend, urls in targets:
            row = {"backend": backend, **measure(urls)}
            dispose_engines()
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if pg is not None:
            pg.stop()
    print(
        f"\n{'backend':<11} {'store ms':>9} {'no log':>7} {'ratio':>6} {'update us':>9} "
        f"{'no log':>7} {'seq ms/1k':>9} {'read ms/1k':>10}"
    )
    for r in results:
        print(
            f"{r['backend']:<11} {r['store_ms_with_log']:>9.2f} {r['store_ms_without_log']:>7.2f} "
            f"{r['median_round_ratio']:>6.3f} {r['feed_update_us_with_log']:>9.1f} "
            f"{r['feed_update_us_without_log']:>7.1f} {r['sequence_ms_per_1000_rows']:>9.1f} "
            f"{r['read_ms_per_1000_changes']:>10.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
