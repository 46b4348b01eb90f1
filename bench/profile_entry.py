"""Where the time goes in one entry: cProfile of pipeline.process_entry, in-process.

    .venv/bin/python bench/profile_entry.py [--pages 200] [--top 25]

Serves the same pages as the benchmark from the local news web, polls one feed
into a fresh SQLite database, then profiles ``pipeline.process_entry`` over
every entry and prints the costliest functions and a per-stage breakdown.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.newsweb import NewsWeb, load_pages, make_plan  # noqa: E402

# Stage -> a function whose cumulative time is that stage's cost.
STAGES = {
    "fetch (HTTP)": ("worker/fetch.py", "get"),
    "decode": ("worker/fetch.py", "decode_body"),
    "extract (trafilatura)": ("worker/extract.py", "extract_article"),
    "classify": ("worker/classify/verdict.py", "classify"),
    "dedup fingerprint": ("worker/dedup.py", "fingerprint"),
    "store.save_article": ("worker/store/articles.py", "save_article"),
    "store.mark_entries_stored": ("worker/store/entries.py", "mark_entries_stored"),
    "commit": ("sqlalchemy/orm/session.py", "commit"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--start", type=int, default=0, help="first article number")
    args = parser.parse_args()

    pages = load_pages(REPO_ROOT.parent / "shared" / "data")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        os.environ["INGEST_DATABASE_URL"] = f"sqlite:///{tmp}/profile.db"
        os.environ["INGEST_ALLOW_PRIVATE_NETWORKS"] = "127.0.0.1/32"
        os.environ["INGEST_LOG_LEVEL"] = "WARNING"
        from worker import migrate, pipeline, store
        from worker.db import session_scope
        from worker.fetch import Fetcher
        from worker.logging import configure_logging
        from worker.models import utcnow
        from worker.settings import get_settings

        settings = get_settings()
        configure_logging("WARNING")
        migrate.upgrade(settings.database_url)
        plan = make_plan(feeds=1, fetches=args.pages, repeat_fraction=0.0, first_article=args.start)
        web = NewsWeb(pages).start()
        try:
            url = web.publish("profile", plan.feeds[0], now=utcnow())
            with session_scope() as session:
                feed, _ = store.upsert_feed(session, name="profile", url=url)
                feed_id = feed.id
            assert feed_id is not None
            with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
                polled = pipeline.poll_feed(
                    feed_id=feed_id, fetcher=fetcher, settings=settings, owner="profile"
                )
                profiler = cProfile.Profile()
                started = time.perf_counter()
                profiler.enable()
                for entry_id in polled.new_entry_ids:
                    pipeline.process_entry(entry_id=entry_id, fetcher=fetcher, settings=settings)
                profiler.disable()
                elapsed = time.perf_counter() - started
        finally:
            web.stop()

    n = len(polled.new_entry_ids)
    print(f"{n} entries in {elapsed:.1f} s = {1000 * elapsed / n:.1f} ms/entry (one process)\n")
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[3] for k, v in raw.items() if k[2] == "process_entry")
    print(f"{'stage':<26} {'ms/entry':>9} {'share':>6}")
    for stage, (file_part, func) in STAGES.items():
        cum = sum(v[3] for k, v in raw.items() if k[0].endswith(file_part) and k[2] == func)
        print(f"{stage:<26} {1000 * cum / n:>9.1f} {100 * cum / total:>5.0f}%")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print("\n" + out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
