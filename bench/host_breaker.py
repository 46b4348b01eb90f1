"""Worker slot-time spent on a host that drips its bytes (issue #22: "a slow host must cost
one slot for one timeout, not six").

A real ``redis-server``, a real Celery worker (2 slots) and beat, and a local web whose
article pages all drip: every fetch of them runs into the total timeout. One feed on that
host lists ``--entries`` articles. For ``--seconds`` (or until no entry is pending) it
counts the fetches that dripped and the seconds each held its worker slot (measured at
the server: from the request until the worker hung up), and how the entries ended.

Run it against this checkout (the circuit breaker on, its defaults) and against one
without the breaker, to compare::

    python -m bench.host_breaker                                  # this checkout
    PYTHONPATH=/path/to/old/checkout python bench/host_breaker.py  # before
    python -m bench.host_breaker --entries 4 --seconds 20         # short mode

The total timeout is ``--timeout`` (2 s) instead of the default 60 s to keep the run
short; slot-seconds scale with it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.integration.helpers import SEEDS, dripping_page, rss, wait_ready, worker_env
from tests.support import services


class DrippingHost:
    """Article pages that never finish arriving; records how long each fetch held on."""

    def __init__(self) -> None:
        self.held: list[float] = []
        self._lock = threading.Lock()

    def route(self, body: bytes) -> Any:
        drip = dripping_page(body, chunk=64, every=0.1)

        def serve(handler: BaseHTTPRequestHandler) -> None:
            started = time.monotonic()
            drip(handler)
            with self._lock:
                self.held.append(time.monotonic() - started)

        return serve


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One run; returns the figures (and prints nothing)."""
    from sqlmodel import select

    from tests.support.factories import add_feed
    from worker import migrate
    from worker.db import dispose_engines, session_scope
    from worker.localweb import LocalWeb
    from worker.models import Entry
    from worker.settings import reset_settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-breaker-"))
    redis = services.start_redis()
    database_url = f"sqlite:///{workdir / 'bench.db'}"
    env = worker_env(database_url, redis.url, INGEST_TOTAL_TIMEOUT=str(args.timeout))
    host = DrippingHost()
    html = (SEEDS / "seed-article.html").read_bytes()
    worker = beat = None
    with LocalWeb() as web:
        items = []
        for n in range(args.entries):
            web.routes[f"/drip/{n}.html"] = host.route(html)
            items.append(
                {"title": f"Story {n}", "link": web.url(f"drip/{n}.html"), "guid": f"d{n}",
                 "description": f"The feed's summary of story {n}, used when the page fails."}
            )  # fmt: skip
        web.add_page("feed.xml", rss(items))
        try:
            os.environ.update(env)
            reset_settings()
            dispose_engines()
            migrate.upgrade(database_url)
            add_feed(name="dripping", url=web.url("feed.xml"))
            worker = services.start_celery("worker", env, workdir=workdir, concurrency=2)
            wait_ready(worker)
            beat = services.start_celery("beat", env, workdir=workdir)
            started = time.monotonic()
            statuses: list[str] = []
            while time.monotonic() - started < args.seconds:
                time.sleep(0.5)
                with session_scope() as session:
                    statuses = list(session.exec(select(Entry.status)).all())
                if len(statuses) == args.entries and "pending" not in statuses:
                    break
            elapsed = time.monotonic() - started
            with session_scope() as session:
                entries = session.exec(select(Entry)).all()
                outcome = {
                    status: sum(1 for e in entries if e.status == status)
                    for status in ("stored", "failed", "pending")
                }
                attempts = sum(e.attempts for e in entries)
            log = worker.log()
        finally:
            if beat is not None:
                beat.stop()
            if worker is not None:
                worker.stop()
            dispose_engines()
            redis.stop()
    return {
        "entries": args.entries,
        "total_timeout_s": args.timeout,
        "run_s": round(elapsed, 1),
        "dripping_fetches": len(host.held),
        "slot_seconds_on_the_host": round(sum(host.held), 1),
        "slot_seconds_per_entry": round(sum(host.held) / args.entries, 2),
        "entries_by_status": outcome,
        "attempts_counted": attempts,
        "breaker_opened": "host_breaker_open" in log,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=90.0, help="Longest run.")
    parser.add_argument("--timeout", type=float, default=2.0, help="INGEST_TOTAL_TIMEOUT.")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
