"""Pool children are replaced when their memory passes the limit, and no work is
lost in the replacement (a real worker, Redis, SQLite and local pages)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.integration.helpers import fundus_page, rss, running_celery, wait_stored, worker_env
from tests.support.factories import add_feed
from worker.localweb import LocalWeb

pytestmark = pytest.mark.integration


def _watch_children(pid: int, seen: set[int], stop: threading.Event) -> None:
    """Record every pool child the worker process has, every 20 ms."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    while not stop.wait(0.02):
        try:
            seen.update(int(child) for child in path.read_text().split())
        except OSError:
            return


def test_a_child_over_its_memory_limit_is_replaced_and_every_entry_is_stored(
    broker_url: str, sqlite_url: str, web: LocalWeb, shared_data: Path, tmp_path: Path
) -> None:
    keys = ["uk/BBC_2024_08_01", "uk/DailyMail_2024_04_27", "uk/TheGuardian_2024_02_24"]
    items = []
    for n, key in enumerate(keys):
        html, record = fundus_page(shared_data, key)
        web.add_page(f"p/{n}.html", html)
        items.append({"title": record["title"], "link": web.url(f"p/{n}.html"), "guid": f"g{n}"})
    web.add_page("feed.xml", rss(items))
    add_feed(name="local", url=web.url("feed.xml"))
    env = worker_env(
        sqlite_url,
        broker_url,
        INGEST_ENTRY_BATCH_SIZE="1",
        # Below what any child holds: every child is replaced after one task.
        INGEST_CHILD_MAX_MEMORY_MB="16",
    )
    children: set[int] = set()
    watching = threading.Event()
    with running_celery(env, tmp_path, concurrency=1, beat=True) as celery:
        watcher = threading.Thread(
            target=_watch_children,
            args=(celery.worker.process.pid, children, watching),
            daemon=True,
        )
        watcher.start()
        try:
            entries = wait_stored(len(keys), timeout=120)
        finally:
            watching.set()
            watcher.join(5)
    log = celery.log()
    # One poll and three entries (and beat's ticks), each in a child replaced after it.
    assert len(children) >= 4, (children, log[-3000:])
    assert sorted(e.attempts for e in entries) == [1, 1, 1]
