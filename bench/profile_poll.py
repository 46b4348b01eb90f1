"""Client and server CPU of one feed poll, part by part: what ``pipeline.poll_feed`` costs.

Why: in the full benchmark (``bench/run.py --stage-cpu``) the poll costs the pool
0.6-0.7 ms per entry, ~17 ms per 25-item feed, of which feedparser is under half;
the rest is the poll's statements. This runs only the poll, in this process, against
the bench's news web (``bench/newsweb.py``, 25 new items a feed, as in the full run)
and a fresh database, and prints CPU per poll: this process's, split by part
(fetch, parse, taking the lease, recording the outcome), and the PostgreSQL
server's. Each feed is polled once, so every poll parses its feed and inserts 25
entries, as the benchmark's polls do. The parts are timed by wrapping the pipeline's
own functions in this process (``time.process_time``, ~1 µs a call); nothing in
``worker/`` changes.

    python -m bench.profile_poll                     # PostgreSQL, 400 feeds
    python -m bench.profile_poll --db sqlite --feeds 100

To compare two versions of the code, run it in a worktree of each, alternately.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.newsweb import NewsWeb, load_pages, make_plan  # noqa: E402
from bench.run import SHARED_DATA, _postmaster_pid, _tree_cpu_s  # noqa: E402

WARM_UP = 5
"""Polls before measuring: statements compile and are prepared, the pool connects."""
ITEMS_PER_FEED = 25


def _timed(parts: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            parts[name] += time.process_time() - started

    return timed


def run(feeds: int, *, db: str = "postgres", data_dir: Path = SHARED_DATA) -> dict[str, Any]:
    """Poll ``feeds`` new feeds once each; CPU per poll (ms), whole and by part."""
    from tests.support import services
    from worker import migrate
    from worker.db import dispose_engines

    pg = services.start_postgres() if db == "postgres" else None
    tmp = tempfile.TemporaryDirectory(prefix="profile-poll-")
    web: NewsWeb | None = None
    saved_env = dict(os.environ)
    restore: list[tuple[Any, str, Any]] = []
    try:
        url = pg.create_database("profile_poll") if pg else f"sqlite:///{tmp.name}/poll.db"
        migrate.upgrade(url)
        os.environ.update(
            {
                "INGEST_DATABASE_URL": url,
                "INGEST_BROKER_URL": "memory://",  # no Redis: the in-process limiter
                "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
                "INGEST_PER_HOST_RATE": "100000",
                "INGEST_PER_HOST_BURST": "100000",
                "INGEST_LOG_LEVEL": "WARNING",
            }
        )
        from worker import pipeline, store
        from worker.db import session_scope
        from worker.models import utcnow
        from worker.pipeline import polling
        from worker.politeness import build_fetcher
        from worker.settings import get_settings, reset_settings

        reset_settings()
        dispose_engines()
        settings = get_settings()
        web = NewsWeb(load_pages(data_dir)).start()
        total = feeds + WARM_UP
        plan = make_plan(feeds=total, fetches=total * ITEMS_PER_FEED, repeat_fraction=0.0)
        feed_ids: list[int] = []
        with session_scope() as session:
            for i, articles in enumerate(plan.feeds):
                feed_url = web.publish(f"poll-{i}", articles, now=utcnow())
                feed, _ = store.upsert_feed(session, name=f"poll-{i}", url=feed_url)
                assert feed.id is not None
                feed_ids.append(feed.id)
        fetcher = build_fetcher(settings)

        parts: dict[str, float] = defaultdict(float)
        for module, attribute, name in (
            (polling, "parse_feed", "parse"),
            (polling, "_fetch_feed", "fetch"),
            (store, "start_poll", "start"),
            (store, "record_poll_success", "record"),
        ):
            original = getattr(module, attribute)
            restore.append((module, attribute, original))
            setattr(module, attribute, _timed(parts, name, original))
        new_entries = 0

        def poll(feed_id: int) -> None:
            nonlocal new_entries
            outcome = pipeline.poll_feed(
                feed_id=feed_id, fetcher=fetcher, settings=settings, owner=f"poll-{feed_id}"
            )
            assert outcome.status == "ok", outcome
            new_entries += len(outcome.new_entry_ids)

        for feed_id in feed_ids[:WARM_UP]:
            poll(feed_id)
        parts.clear()
        new_entries = 0
        server_pid = _postmaster_pid(pg) if pg else None
        server0 = _tree_cpu_s(server_pid) if server_pid else 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for feed_id in feed_ids[WARM_UP:]:
            poll(feed_id)
        client = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        server = _tree_cpu_s(server_pid) - server0 if server_pid else 0.0
        fetcher.close()
        per_poll = 1000 / feeds
        by_part = {name: round(seconds * per_poll, 3) for name, seconds in parts.items()}
        by_part["other"] = round(client * per_poll - sum(by_part.values()), 3)
        return {
            "db": db,
            "polls": feeds,
            "new_entries": new_entries,
            "client_cpu_ms_per_poll": round(client * per_poll, 3),
            "server_cpu_ms_per_poll": round(server * per_poll, 3) if pg else None,
            "wall_ms_per_poll": round(wall * per_poll, 3),
            "client_cpu_ms_by_part": by_part,
        }
    finally:
        for module, attribute, original in restore:
            setattr(module, attribute, original)
        os.environ.clear()
        os.environ.update(saved_env)
        from worker.settings import reset_settings

        reset_settings()
        if web is not None:
            web.stop()
        dispose_engines()
        if pg is not None:
            pg.stop()
        tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--feeds", type=int, default=400, help="feeds polled and measured")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    args = parser.parse_args(argv)
    result = run(args.feeds, db=args.db, data_dir=args.data_dir)
    parts = result["client_cpu_ms_by_part"]
    server = result["server_cpu_ms_per_poll"]
    print(
        f"{result['db']}: {result['polls']} polls of {ITEMS_PER_FEED}-item feeds "
        f"({result['new_entries']} new entries); per poll: client CPU "
        f"{result['client_cpu_ms_per_poll']:.2f} ms"
        + (f", server CPU {server:.2f} ms" if server is not None else "")
        + f", wall {result['wall_ms_per_poll']:.2f} ms"
    )
    print("  client CPU by part: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
