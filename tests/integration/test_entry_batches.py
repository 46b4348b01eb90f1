"""Entries in batches: how they are grouped into messages (read back from a real
Redis queue), and how a batch overlaps the next fetch with the current extraction."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.helpers import (
    dripping_page,
    fundus_page,
    rss,
    running_celery,
    wait_stored,
    worker_env,
)
from tests.support import services
from tests.support.factories import add_feed
from worker.localweb import LocalWeb
from worker.store import as_utc

pytestmark = pytest.mark.integration


def _enqueue_and_read(broker: str, entry_ids: list[int], **env: str) -> list[tuple[str, list]]:
    """Run ``enqueue_entries`` in a fresh process (the Celery app reads its broker
    at import) and return each queued message as ``(task name, args)``."""
    client = redis.Redis.from_url(broker)
    client.flushdb()
    code = f"from worker.tasks import enqueue_entries; enqueue_entries({entry_ids!r})"
    subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "INGEST_BROKER_URL": broker, **env},
        cwd=services.REPO_ROOT,
        check=True,
        timeout=60,
    )
    messages = []
    # kombu LPUSHes and workers BRPOP: the oldest message is at the right.
    for raw in reversed(client.lrange("celery", 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


def test_a_polls_entries_go_out_in_batches(broker_url: str) -> None:
    # At most INGEST_ENTRY_BATCH_SIZE (8) per batch, as even as can be: 5 and 4, not 8 and 1.
    assert _enqueue_and_read(broker_url, list(range(1, 10))) == [
        ("worker.tasks.process_entries", [[1, 2, 3, 4, 5]]),
        ("worker.tasks.process_entries", [[6, 7, 8, 9]]),
    ]
    assert _enqueue_and_read(broker_url, list(range(1, 10)), INGEST_ENTRY_BATCH_SIZE="4") == [
        ("worker.tasks.process_entries", [[1, 2, 3]]),
        ("worker.tasks.process_entries", [[4, 5, 6]]),
        ("worker.tasks.process_entries", [[7, 8, 9]]),
    ]
    assert _enqueue_and_read(broker_url, [7]) == [
        ("worker.tasks.process_entry", [7]),  # a lone entry needs no batch
    ]
    assert _enqueue_and_read(broker_url, [7, 8, 9], INGEST_ENTRY_BATCH_SIZE="1") == [
        ("worker.tasks.process_entry", [7]),
        ("worker.tasks.process_entry", [8]),
        ("worker.tasks.process_entry", [9]),
    ]
    assert _enqueue_and_read(broker_url, []) == []


def _timed_page(body: bytes, seen: dict[str, float], path: str) -> Any:
    """Serve ``body`` and note (wall clock, as the database's timestamps) when it was asked for."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        seen[path] = time.time()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def test_a_batch_fetches_the_next_page_while_this_one_is_extracted(
    broker_url: str, sqlite_url: str, web: LocalWeb, shared_data: Path, tmp_path: Path
) -> None:
    """Within a batch, page n+1 is requested before entry n is stored: the fetch
    overlaps the extraction instead of leaving the process idle."""
    keys = ["uk/BBC_2024_08_01", "uk/DailyMail_2024_04_27", "uk/TheGuardian_2024_02_24"]
    requested: dict[str, float] = {}
    items = []
    for n, key in enumerate(keys):
        html, record = fundus_page(shared_data, key)
        path = f"/p/{n}.html"
        web.routes[path] = _timed_page(html, requested, path)
        items.append({"title": record["title"], "link": web.url(path), "guid": path})
    web.add_page("feed.xml", rss(items))
    add_feed(name="local", url=web.url("feed.xml"))
    with running_celery(worker_env(sqlite_url, broker_url), tmp_path, beat=True) as celery:
        entries = wait_stored(len(keys))
    assert '"worker.tasks.process_entries"' in celery.log()  # the three went out as one batch
    stored_at = {e.guid: as_utc(e.updated_at).timestamp() for e in entries}
    for n in range(len(keys) - 1):
        this, following = f"/p/{n}.html", f"/p/{n + 1}.html"
        assert requested[following] < stored_at[this], (n, requested, stored_at)


def test_closing_the_prefetcher_does_not_wait_for_a_page_that_never_ends(
    sqlite_url: str, shared_data: Path
) -> None:
    """A batch cut short (soft time limit) must not hang on its prefetch thread."""
    from worker import pipeline
    from worker.fetch import Fetcher
    from worker.settings import get_settings

    html, _record = fundus_page(shared_data, "uk/BBC_2024_08_01")
    with LocalWeb() as web:
        web.add_page("/fine.html", html, "text/html; charset=utf-8")

        web.routes["/endless.html"] = dripping_page(html, chunk=16, every=0.2)
        settings = get_settings()

        def job(path: str) -> pipeline.EntryJob:
            return pipeline.EntryJob(
                entry_id=1,
                url=web.url(path),
                title=None,
                summary=None,
                published_at=None,
                author=None,
                feed_id=None,
                guid=None,
            )

        with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
            with pipeline.PagePrefetcher(fetcher, settings) as prefetcher:
                fine = prefetcher.submit(job("/fine.html"))
                assert fine.result(timeout=30).body == html
                endless_page = prefetcher.submit(job("/endless.html"))
                queued = prefetcher.submit(job("/fine.html"))
                time.sleep(0.3)  # the endless fetch is under way
                closing = time.monotonic()
            assert time.monotonic() - closing < 1.0
            assert not endless_page.done()
            assert queued.cancelled()  # never sent: the batch's rest goes on elsewhere
