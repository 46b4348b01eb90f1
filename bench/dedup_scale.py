"""Does a dedup lookup get slower as the database grows? (issue: dedup at scale)

Seeds a fresh database with N synthetic articles (bodies drawn from a fixed
vocabulary, with their LSH band and title keys, bulk-inserted), then stores
the same probe articles through ``store.save_article`` — new stories and
near-duplicate copies of stored ones — at each size, in one run, and prints
the mean cost per save and its ratio to the smallest size.

    python -m bench.dedup_scale                 # 10k and 100k on SQLite
    python -m bench.dedup_scale --sizes 10000 100000 --postgres
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.corpus import BulkWriter
from worker import dedup, migrate, store
from worker.classify import classify
from worker.db import dispose_engines, session_scope
from worker.models import Article, ArticleBand, Story
from worker.store.sql import table_of

VOCAB_SIZE = 20_000
BODY_WORDS = 120
PROBES = 200


def _words(rng: random.Random) -> list[str]:
    return [f"w{rng.randrange(VOCAB_SIZE)}" for _ in range(BODY_WORDS)]


def _seed(url: str, size: int, rng: random.Random) -> list[tuple[str, str, datetime]]:
    """Bulk-insert ``size`` articles (one story each); returns (title, body, date) of a sample."""
    writer = BulkWriter(url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sample: list[tuple[str, str, datetime]] = []
    batch_articles: list[dict[str, Any]] = []
    batch_bands: list[dict[str, Any]] = []
    batch_stories: list[dict[str, Any]] = []
    verdict = classify(title="", body="", language="en")

    def flush() -> None:
        writer.write_many(
            [
                (table_of(Story), batch_stories),
                (table_of(Article), batch_articles),
                (table_of(ArticleBand), batch_bands),
            ]
        )
        batch_articles.clear()
        batch_bands.clear()
        batch_stories.clear()

    for n in range(1, size + 1):
        words = _words(rng)
        title = " ".join(words[:8])
        body = " ".join(words)
        published = now - timedelta(minutes=n)
        fp = dedup.fingerprint(title=title, body=body, published_at=published)
        batch_stories.append({"id": n, "title": title, "first_seen_at": now, "last_seen_at": now,
                              "article_count": 1, "source_count": 1, "is_ukraine_security": False,
                              "security_score": 0.0, "topics": [], "created_at": now,
                              "updated_at": now})  # fmt: skip
        batch_articles.append({"id": n, "url": f"https://s{n % 97}.example/{n}",
                               "canonical_url": f"https://s{n % 97}.example/{n}", "title": title,
                               "title_history": [], "body": body, "published_at": published,
                               "fetched_at": now, "extraction_method": "trafilatura",
                               "content_hash": fp.content_hash,
                               "minhash": dedup.encode_signature(fp.signature), "story_id": n,
                               "is_ukraine_security": False, "security_score": 0.0, "topics": [],
                               "evidence": {}, "classifier_version": verdict.version,
                               "created_at": now, "updated_at": now})  # fmt: skip
        batch_bands.extend(
            {"band_key": k, "article_id": n} for k in sorted(set(dedup.index_keys(fp)))
        )
        if n % max(size // (PROBES // 2), 1) == 0:
            sample.append((title, body, published))
        if len(batch_articles) >= 2000:
            flush()
    if batch_articles:
        flush()
    # Explicit ids were inserted: move the sequences past them; fresh statistics on
    # PostgreSQL, as autovacuum would have in a live database.
    writer.finish(analyze=True)
    return sample


def _probe_records(
    sample: list[tuple[str, str, datetime]], rng: random.Random
) -> list[store.ArticleRecord]:
    """Half copies of stored articles (a word changed), half brand-new articles."""
    records = []
    for i in range(PROBES):
        if i % 2 == 0 and sample:
            title, body, published = sample[(i // 2) % len(sample)]
            words = body.split()
            words[rng.randrange(len(words))] = "edited"
            body = " ".join(words)
        else:
            words = _words(rng)
            title, body = " ".join(words[:8]), " ".join(words)
            published = datetime(2026, 1, 1, tzinfo=UTC)
        url = f"https://probe.example/{i}-{rng.random()}"
        records.append(
            store.ArticleRecord(
                url=url, canonical_url=url, feed_id=None, guid=None, title=title, body=body,
                summary=None, author=None, published_at=published, language="en",
                extraction_method="trafilatura",
                fingerprint=dedup.fingerprint(title=title, body=body, published_at=published),
                classification=classify(title=title, body=body, language="en"),
            )
        )  # fmt: skip
    return records


def measure(url: str, size: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    migrate.upgrade(url)
    started = time.perf_counter()
    sample = _seed(url, size, rng)
    seeded_s = time.perf_counter() - started
    records = _probe_records(sample, random.Random(seed + 1))
    timings: list[float] = []
    actions: dict[str, int] = {}
    for record in records:
        t0 = time.perf_counter()
        with session_scope(url) as session:
            outcome = store.save_article(session, record)
        timings.append((time.perf_counter() - t0) * 1000)
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    return {
        "articles": size,
        "seed_seconds": round(seeded_s, 1),
        "save_ms_mean": round(statistics.fmean(timings), 3),
        "save_ms_p95": round(sorted(timings)[int(len(timings) * 0.95)], 3),
        "actions": actions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--postgres", action="store_true", help="Also run on PostgreSQL.")
    parser.add_argument("--json", type=Path, help="Write results here as JSON.")
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    targets: list[tuple[str, Any]] = [("sqlite", None)]
    pg = None
    if args.postgres:
        from tests.support.services import start_postgres

        pg = start_postgres()
        targets.append(("postgresql", pg))
    try:
        for backend, server in targets:
            for size in args.sizes:
                if server is None:
                    workdir = Path(tempfile.mkdtemp(prefix="dedup-scale-"))
                    url = f"sqlite:///{workdir / 'bench.db'}"
                else:
                    url = server.create_database(f"dedup_scale_{size}")
                row = {"backend": backend, **measure(url, size)}
                dispose_engines()
                results.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if pg is not None:
            pg.stop()

    print(f"\n{'backend':<11} {'articles':>9} {'save ms':>8} {'p95 ms':>7} {'x smallest':>10}")
    for backend in {r["backend"] for r in results}:
        rows = [r for r in results if r["backend"] == backend]
        base = rows[0]["save_ms_mean"]
        for r in rows:
            ratio = r["save_ms_mean"] / base
            print(
                f"{backend:<11} {r['articles']:>9} {r['save_ms_mean']:>8.2f} "
                f"{r['save_ms_p95']:>7.2f} {ratio:>10.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
