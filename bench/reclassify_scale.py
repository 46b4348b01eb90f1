"""How long does ``ingest reclassify`` take to relabel a large database?

Why: after every classifier release the operator runs one documented command,
``ingest reclassify``, and needs to know whether that is minutes or a day. This seeds a
fresh database with N articles of real text (full articles from ``fundus/`` and
``ukraine_news_bias_2014/``, feed items from the labelled 2023 dump and the Ukrainian and
Russian items, cycled; one story each, as the store path makes them), all marked with an
older classifier version, then starts a real ``redis-server`` and a real Celery worker
(``ingest worker --concurrency C``) and runs ``ingest reclassify --json`` - the command the
README gives - timing it until every article carries the current version.

    python -m bench.reclassify_scale                       # 100,000 articles, SQLite
    python -m bench.reclassify_scale --articles 5000       # a short run
    python -m bench.reclassify_scale --postgres            # a throwaway PostgreSQL cluster

Prints seeding time, the command's wall time, articles per second, the worker's CPU per
article and how many labels changed. Needs ``../shared/data`` and the redis/PostgreSQL
binaries the test suite uses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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

from bench.run import _tree_cpu_s  # noqa: E402  (the end-to-end bench's CPU reading)
from eval.classifier_eval import DEFAULT_DATA_DIR, load_items  # noqa: E402
from worker.models import Article, Story  # noqa: E402

OLD_VERSION = "bench-old-version"
SEED_BATCH = 2_000


def text_pool(data_dir: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(title, body, language) of full articles and of feed items, in a fixed order."""
    full: list[tuple[str, str, str]] = []
    short: list[tuple[str, str, str]] = []
    for item in load_items(data_dir):
        row = (item.title, item.body, item.language)
        if item.source in ("fundus", "ukraine_news_bias_2014"):
            full.append(row)
        else:
            short.append(row)
    return full, short


def seed(url: str, n: int, pool: tuple[list[Any], list[Any]], full_share: float) -> None:
    """Bulk-insert ``n`` articles (each with its own story) at ``OLD_VERSION``."""
    from bench.corpus import BulkWriter
    from worker.store.sql import table_of

    full, short = pool
    writer = BulkWriter(url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    stories: list[dict[str, Any]] = []
    articles: list[dict[str, Any]] = []
    every = round(1 / full_share) if full_share > 0 else 0

    def flush() -> None:
        writer.write_many([(table_of(Story), stories), (table_of(Article), articles)])
        stories.clear()
        articles.clear()

    for i in range(1, n + 1):
        title, body, language = (
            full[i % len(full)] if every and i % every == 0 else short[i % len(short)]
        )
        stories.append({"id": i, "title": title, "first_seen_at": now, "last_seen_at": now,
                        "article_count": 1, "source_count": 1, "is_ukraine_security": False,
                        "security_score": 0.0, "topics": [], "created_at": now,
                        "updated_at": now})  # fmt: skip
        link = f"https://s{i % 97}.example/{i}"
        articles.append({"id": i, "url": link, "canonical_url": link, "title": title,
                         "title_history": [], "body": body, "language": language,
                         "published_at": now - timedelta(minutes=i), "fetched_at": now,
                         "extraction_method": "trafilatura", "content_hash": f"{i:064x}",
                         "story_id": i, "is_ukraine_security": False, "security_score": 0.0,
                         "topics": [], "evidence": {}, "classifier_version": OLD_VERSION,
                         "created_at": now, "updated_at": now})  # fmt: skip
        if len(articles) >= SEED_BATCH:
            flush()
    if articles:
        flush()
    writer.finish(analyze=False)  # explicit ids were inserted: move the sequences on


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import services
    from worker import migrate
    from worker.classify import CLASSIFIER_VERSION
    from worker.db import dispose_engines, session_scope
    from worker.settings import reset_settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-reclassify-"))
    redis = services.start_redis()
    pg: services.PostgresServer | None = None
    worker: services.CeleryProcess | None = None
    try:
        if args.postgres:
            pg = services.start_postgres()
            db_url = pg.create_database("reclassify")
        else:
            db_url = f"sqlite:///{workdir / 'bench.db'}"
        env = {"INGEST_DATABASE_URL": db_url, "INGEST_BROKER_URL": redis.url}
        os.environ.update(env)
        reset_settings()
        dispose_engines()
        migrate.upgrade(db_url)
        pool = text_pool(args.data_dir)
        t0 = time.monotonic()
        seed(db_url, args.articles, pool, args.full_share)
        seed_s = time.monotonic() - t0
        dispose_engines()

        worker = services.start_celery("worker", env, workdir=workdir, concurrency=args.concurrency)
        deadline = time.monotonic() + 120
        while "ready" not in worker.log():
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + worker.log()[-2000:])
            time.sleep(0.5)
        cpu0 = _tree_cpu_s(worker.process.pid)
        t0 = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "reclassify", "--json",
             "--timeout", str(args.timeout)],
            env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        wall = time.monotonic() - t0
        cpu = _tree_cpu_s(worker.process.pid) - cpu0
        if done.returncode != 0:
            raise RuntimeError(f"ingest reclassify failed: {done.stdout}\n{done.stderr}")
        result = json.loads(done.stdout[done.stdout.index("{") :])
        with session_scope() as session:
            versions = dict(
                session.execute(
                    sa.select(Article.classifier_version, sa.func.count()).group_by(
                        Article.classifier_version
                    )
                ).all()
            )
            positives = session.execute(
                sa.select(sa.func.count()).where(Article.is_ukraine_security.is_(True))  # type: ignore[attr-defined]
            ).scalar_one()
        if versions != {CLASSIFIER_VERSION: args.articles}:
            raise RuntimeError(f"not every article was relabelled: {versions}")
        return {
            "database": "postgresql" if args.postgres else "sqlite",
            "articles": args.articles,
            "full_article_share": args.full_share,
            "concurrency": args.concurrency,
            "seed_seconds": round(seed_s, 1),
            "reclassify_seconds": round(wall, 1),
            "articles_per_second": round(args.articles / wall, 1),
            "worker_cpu_ms_per_article": round(cpu * 1000 / args.articles, 2),
            "batches": result["batches"],
            "positives_after": positives,
            "version": CLASSIFIER_VERSION,
        }
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        if pg is not None:
            pg.stop()
        dispose_engines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--full-share", type=float, default=0.5, help="share of full articles (rest: feed items)"
    )
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
