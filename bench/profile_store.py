"""Where the client's time goes when storing one article: cProfile of the store path.

Why: on PostgreSQL the pool children spend several milliseconds per article beyond the
bare extraction and classification (docs/benchmark.md, "With PostgreSQL"), and py-spy
over a whole run mixes that with everything else. This runs only what the Celery task
runs to persist an extracted, classified article (``pipeline.begin_entry`` and
``pipeline.store_entry_article``, the functions ``bench/store_scale.py`` times), in this
process, against a database bulk-loaded with ``bench.corpus``, and prints CPU per
article and the costliest functions grouped by package, so a change to the store path
can be judged by its client CPU in isolation.

    python -m bench.profile_store                     # PostgreSQL, 10k loaded, 600 stored
    python -m bench.profile_store --db sqlite --articles 1000
    python -m bench.profile_store --no-profile        # CPU per article without cProfile's cost
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
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.corpus import Corpus, CorpusSpec  # noqa: E402
from bench.store_scale import Database, probe_records  # noqa: E402

WARM_UP = 10
"""Articles stored before measuring: statements compile, the pool connects."""

# Package -> a fragment of the file names its functions live in (first match wins).
PACKAGES = (
    ("sqlalchemy", "/sqlalchemy/"),
    ("sqlmodel", "/sqlmodel/"),
    ("psycopg", "/psycopg"),
    ("sqlite3", "sqlite3"),
    ("worker.store", "/worker/store/"),
    ("worker.dedup", "/worker/dedup"),
    ("worker (other)", "/worker/"),
    ("structlog", "/structlog/"),
)


def _package(filename: str) -> str:
    for name, fragment in PACKAGES:
        if fragment in filename:
            return name
    return "other" if filename != "~" else "builtins"


def own_time_by_package(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time (``tottime``) per package: where the CPU is actually spent."""
    out: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        out[_package(filename)] += tottime
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--loaded", type=int, default=10_000, help="articles bulk-loaded first")
    parser.add_argument("--articles", type=int, default=600, help="articles stored and profiled")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    parser.add_argument("--synthetic-text", action="store_true", help="no ../shared/data")
    args = parser.parse_args(argv)

    from tests.support import services
    from worker import migrate
    from worker.db import dispose_engines

    if args.synthetic_text:
        from bench.corpus import synthetic_pool

        pool = synthetic_pool()
    else:
        from bench.reclassify_scale import text_pool
        from eval.classifier_eval import DEFAULT_DATA_DIR

        pool = text_pool(DEFAULT_DATA_DIR)
    corpus = Corpus(pool, CorpusSpec())
    pg = services.start_postgres() if args.db == "postgres" else None
    tmp = tempfile.TemporaryDirectory(prefix="profile-store-")
    try:
        url = (
            pg.create_database("profile_store")
            if pg is not None
            else f"sqlite:///{tmp.name}/profile.db"
        )
        migrate.upgrade(url)
        db = Database("db", url)
        db.last_id = corpus.load(url, 0, args.loaded).last_id
        db.loaded = args.loaded
        server_pid = int((pg.datadir / "postmaster.pid").read_text().split()[0]) if pg else 0
        from bench.run import _tree_cpu_s
        from worker import pipeline, store
        from worker.db import session_scope
        from worker.settings import get_settings, reset_settings

        os.environ["INGEST_DATABASE_URL"] = url
        reset_settings()
        settings = get_settings()
        with session_scope() as session:
            feed, _ = store.upsert_feed(session, name="probe", url="https://probe.example/rss")
            feed_id = int(feed.id or 0)
        probes = probe_records(corpus, db, args.articles + WARM_UP, 0)
        with session_scope() as session:
            entry_ids = store.add_entries(session, feed_id=feed_id, items=[p[1] for p in probes])

        def store_one(entry_id: int, record: Any) -> None:
            """What the Celery task runs to persist one extracted, classified article."""
            job = pipeline.begin_entry(entry_id=entry_id, settings=settings)
            assert isinstance(job, pipeline.EntryJob), f"entry {entry_id} was not new: {job}"
            pipeline.store_entry_article(
                entry_id=entry_id, record=record, settings=settings, count_attempt=True
            )

        # Warm up: the first statements compile and cache, the pool connects.
        for entry_id, (_kind, _item, record) in zip(entry_ids[:WARM_UP], probes, strict=False):
            store_one(entry_id, record)
        # CPU time, not wall time: on a shared host a wall-clock profile charges the
        # time this process waited for a core (or the server) to whatever was running.
        profiler = cProfile.Profile(time.process_time)
        server0 = _tree_cpu_s(server_pid) if pg else 0.0
        cpu0, t0 = time.process_time(), time.perf_counter()
        if not args.no_profile:
            profiler.enable()
        for entry_id, (_kind, _item, record) in zip(
            entry_ids[WARM_UP:], probes[WARM_UP:], strict=True
        ):
            store_one(entry_id, record)
        profiler.disable()
        client = time.process_time() - cpu0
        server = _tree_cpu_s(server_pid) - server0 if pg else 0.0
        wall = time.perf_counter() - t0
        stored = args.articles
        print(
            f"{args.db}: {stored} articles stored after {args.loaded:,} loaded; per article: "
            f"wall {wall * 1000 / stored:.2f} ms, client CPU {client * 1000 / stored:.2f} ms"
            + (f", server CPU {server * 1000 / stored:.2f} ms" if pg else "")
            + (" (cProfile attached: CPU inflated)" if not args.no_profile else "")
        )
        if not args.no_profile:
            stats = pstats.Stats(profiler)
            total = sum(own_time_by_package(stats).values())
            print("\nown time by package (share of profiled time):")
            for name, seconds in own_time_by_package(stats).items():
                print(f"  {name:16s} {seconds * 1000 / stored:7.3f} ms  {seconds / total:6.1%}")
            buffer = io.StringIO()
            pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(args.top)
            print(buffer.getvalue())
            buffer = io.StringIO()
            pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(args.top)
            print(buffer.getvalue())
    finally:
        dispose_engines()
        if pg is not None:
            pg.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
