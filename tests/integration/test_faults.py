"""Fault injection with real parts: SIGKILLed workers, a Redis restart, a PostgreSQL
outage, duplicate delivery and a page that outlives the task time limit.

Each test serves real news pages (fundus) from a local HTTP server, runs real
Celery workers against a real redis-server, and asserts the final database
state: every entry stored exactly once (one article per canonical URL, one
story per distinct article) or, for the poisoned page, failed with its reason.
Pages are served slowly where a fault must land while tasks are in flight.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from celery import Celery
from sqlmodel import col, select

from tests.integration.helpers import (
    dripping_page,
    fundus_page,
    processed,
    rss,
    running_celery,
    wait_until,
    worker_env,
)
from tests.support import services
from tests.support.factories import add_feed
from tests.support.logs import Events, LogEvents
from worker import migrate, pipeline
from worker.db import dispose_engines, session_scope
from worker.fetch import Fetcher
from worker.localweb import LocalWeb
from worker.models import Article, Entry, Story
from worker.settings import get_settings, reset_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Distinct real articles (no two are the same story), each long enough to extract.
KEYS = [
    "uk/BBC_2024_08_01",
    "uk/DailyMail_2024_04_27",
    "uk/EuronewsEN_2024_04_30",
    "uk/EveningStandard_2024_05_02",
    "uk/Express_2024_07_18",
    "uk/Metro_2024_07_17",
    "uk/TheGuardian_2024_02_24",
    "uk/TheMirror_2024_04_28",
    "uk/TheTelegraph_2024_09_17",
    "us/APNews_2024_09_03",
]


def _send(handler: BaseHTTPRequestHandler, body: bytes, content_type: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def slow_page(body: bytes, delay: float) -> Callable[[BaseHTTPRequestHandler], None]:
    """A page that takes ``delay`` seconds to answer, so tasks are in flight when we strike."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        _send(handler, body, "text/html; charset=utf-8")

    return route


class NewsSite:
    """Real article pages under /p/<n>.html and one RSS feed linking to them."""

    def __init__(self, web: LocalWeb, shared_data: Path) -> None:
        self.web = web
        self.shared_data = shared_data
        self.items: list[dict[str, str]] = []

    def add_article(self, key: str, *, delay: float = 0.0, drip: bool = False) -> str:
        html, record = fundus_page(self.shared_data, key)
        path = f"/p/{len(self.items)}.html"
        if drip:
            self.web.routes[path] = dripping_page(html)
        elif delay:
            self.web.routes[path] = slow_page(html, delay)
        else:
            self.web.add_page(path, html, "text/html; charset=utf-8")
        url = self.web.url(path)
        self.items.append({"title": record["title"], "link": url, "guid": url})
        return url

    def publish_feed(self) -> int:
        """Serve the feed and register it; returns the feed id."""
        self.web.add_page("feed.xml", rss(self.items))
        return add_feed(name="faults", url=self.web.url("feed.xml"))

    def publish(self, keys: list[str], *, delay: float = 0.0) -> int:
        """Articles for ``keys``, each answering after ``delay`` seconds, and their feed."""
        for key in keys:
            self.add_article(key, delay=delay)
        return self.publish_feed()

    def page_requests(self) -> int:
        return sum(1 for path, _ in list(self.web.requests) if path.startswith("/p/"))


@pytest.fixture
def site(web: LocalWeb, shared_data: Path) -> NewsSite:
    return NewsSite(web, shared_data)


def poll_in_process(feed_id: int) -> list[int]:
    """Poll the feed here, not in a worker; the ids of its new entries."""
    settings = get_settings()
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        polled = pipeline.poll_feed(feed_id=feed_id, fetcher=fetcher, settings=settings, owner="t")
    return polled.new_entry_ids


def send(broker_url: str, task: str, *args: Any) -> None:
    """Enqueue by task name, as beat or another worker would."""
    client = Celery(broker=broker_url)
    try:
        client.send_task(task, args=list(args))
    finally:
        client.close()


def _safe(predicate: Callable[[], bool]) -> Callable[[], bool]:
    """A wait predicate that reads 'not yet' while the database is away."""

    def check() -> bool:
        try:
            return predicate()
        except sqlalchemy.exc.OperationalError:
            dispose_engines()
            return False

    return check


def stored_count() -> int:
    with session_scope() as session:
        return len(session.exec(select(Entry).where(col(Entry.status) == "stored")).all())


def assert_stored_exactly_once(expected: int) -> None:
    """Every entry stored, one article per canonical URL, one story per article."""
    with session_scope() as session:
        entries = session.exec(select(Entry)).all()
        articles = session.exec(select(Article)).all()
        stories = session.exec(select(Story)).all()
        assert len(entries) == expected
        bad = [(e.url, e.status, e.error) for e in entries if e.status != "stored"]
        assert not bad, bad
        assert len(articles) == expected
        assert len({a.canonical_url for a in articles}) == expected
        assert {e.article_id for e in entries} == {a.id for a in articles}
        assert len(stories) == expected
        assert all(s.article_count == 1 for s in stories)


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.fixture(scope="module")
def own_redis() -> Iterator[services.RedisServer]:
    """A Redis of our own: these tests restart it, which must not hit other tests."""
    try:
        server = services.start_redis()
    except services.ServiceUnavailableError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def broker_url(own_redis: services.RedisServer) -> str:
    import redis

    redis.Redis.from_url(own_redis.url).flushdb()
    return own_redis.url


def test_sigkill_mid_processing_stores_each_article_once(
    sqlite_url: str, broker_url: str, site: NewsSite, tmp_path: Path
) -> None:
    """SIGKILLed pool children and a SIGKILLed worker lose nothing and store nothing twice."""
    env = worker_env(sqlite_url, broker_url, INGEST_BROKER_VISIBILITY_TIMEOUT="8")
    feed_id = site.publish(KEYS, delay=1.5)
    with running_celery(env, tmp_path) as first:
        send(broker_url, "worker.tasks.poll_feed", feed_id)
        # 1. Kill the pool children while they wait on a page: the main
        # process sees the worker lost and requeues (reject_on_worker_lost).
        wait_until(lambda: site.page_requests() >= 1, timeout=30, what="a page request")
        children = pool_children(first.worker.process.pid)
        assert children
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        # 2. Kill the whole worker mid-task: its unacknowledged messages
        # return after the visibility timeout, to a replacement worker.
        seen = site.page_requests()
        wait_until(lambda: site.page_requests() > seen, timeout=30, what="work resumed")
        assert stored_count() < len(KEYS)
        first.worker.kill()
        with running_celery(env, tmp_path) as replacement:
            wait_until(processed, timeout=60, what="every entry processed")
    assert_stored_exactly_once(len(KEYS))
    # The poll's ten entries went out as batches; a batch that came back after
    # its run died was split into single entries, each counting the lost run.
    Events([*first.events(), *replacement.events()]).expect(
        "entry_batch_split", reason="redelivered"
    )
    with session_scope() as session:
        attempts = session.exec(select(Entry.attempts)).all()
    assert max(attempts) >= 2  # killed runs were redelivered, not lost


def test_redis_restart_with_work_queued_loses_nothing(
    sqlite_url: str,
    broker_url: str,
    own_redis: services.RedisServer,
    site: NewsSite,
    tmp_path: Path,
) -> None:
    """Queued messages die with Redis (no persistence); beat re-enqueues the pending entries."""
    env = worker_env(sqlite_url, broker_url, INGEST_STALE_PENDING_SECONDS="4")
    site.publish(KEYS, delay=1.0)
    with running_celery(env, tmp_path, beat=True):
        wait_until(lambda: site.page_requests() >= 1, timeout=30, what="processing started")
        with session_scope() as session:
            pending = session.exec(select(Entry).where(col(Entry.status) == "pending")).all()
        assert len(pending) >= len(KEYS) - 2  # most of the work is still queued
        own_redis.restart()
        wait_until(processed, timeout=60, what="every entry processed after the restart")
    assert_stored_exactly_once(len(KEYS))


def test_postgres_outage_recovers_without_loss(
    broker_url: str, site: NewsSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stops for a few seconds mid-run: tasks retry, nothing lost or duplicated."""
    try:
        pg = services.start_postgres()
    except services.ServiceUnavailableError as exc:
        pytest.skip(str(exc))
    try:
        url = pg.create_database("faults")
        monkeypatch.setenv("INGEST_DATABASE_URL", url)
        reset_settings()
        dispose_engines()
        migrate.upgrade(url)
        # Batches of 2: five tasks over two pool processes, so that entries are still
        # to be stored when the outage starts (with the default of up to 8, the ten
        # entries are two batches of 5 that store together and may both finish first).
        env = worker_env(
            url, broker_url, INGEST_STALE_PENDING_SECONDS="5", INGEST_ENTRY_BATCH_SIZE="2"
        )
        site.publish(KEYS, delay=0.5)
        with running_celery(env, tmp_path, beat=True) as celery:
            wait_until(lambda: stored_count() >= 2, timeout=45, what="first articles stored")
            pg.stop(remove=False)
            time.sleep(4)
            pg.start()
            wait_until(_safe(processed), timeout=60, what="every entry processed")
        assert "OperationalError" in celery.log()  # the outage was felt, and survived
        assert_stored_exactly_once(len(KEYS))
    finally:
        dispose_engines()
        pg.stop()


def test_duplicate_delivery_stores_one_article(
    database_url: str, broker_url: str, site: NewsSite, tmp_path: Path
) -> None:
    """The same entry delivered to two worker processes at once ends as one article row."""
    keys = KEYS[:3]
    entry_ids = poll_in_process(site.publish(keys, delay=1.0))
    assert len(entry_ids) == len(keys)
    with running_celery(worker_env(database_url, broker_url), tmp_path):
        for entry_id in entry_ids:
            for _copy in range(2):
                send(broker_url, "worker.tasks.process_entry", entry_id)
        wait_until(lambda: site.page_requests() >= 2 * len(keys), timeout=60, what="fetches")
        wait_until(processed, timeout=30, what="every entry processed")

        def both_copies_ran() -> bool:
            with session_scope() as session:
                attempts = session.exec(select(Entry.attempts)).all()
            return all(a == 2 for a in attempts)

        wait_until(both_copies_ran, timeout=30, what="both deliveries finished")
    assert_stored_exactly_once(len(keys))


def test_poisoned_page_times_out_and_the_batch_goes_on(
    sqlite_url: str, broker_url: str, site: NewsSite, tmp_path: Path
) -> None:
    """A page that never finishes arriving hits the soft time limit and is recorded as failed."""
    # Hard limit 8 s, soft limit 6 s; the page would take ~30 s to arrive.
    env = worker_env(sqlite_url, broker_url, INGEST_TASK_TIME_LIMIT="8")
    poisoned = site.add_article(KEYS[0], drip=True)
    for key in KEYS[1:5]:
        site.add_article(key)
    feed_id = site.publish_feed()
    with running_celery(env, tmp_path) as celery:
        send(broker_url, "worker.tasks.poll_feed", feed_id)
        wait_until(processed, timeout=45, what="every entry processed")
    with session_scope() as session:
        entries = {e.url: e for e in session.exec(select(Entry)).all()}
        bad = entries.pop(poisoned)
        assert bad.status == "failed"
        assert bad.error_class == "timeout"
        assert bad.error is not None
        assert "time limit" in bad.error
        assert bad.article_id is None
        assert all(e.status == "stored" for e in entries.values())
        assert len(session.exec(select(Article)).all()) == len(entries)
        celery.events().expect("entry_failed", entry_id=bad.id, error_class="timeout")


def test_crash_loop_is_capped_by_attempts(
    sqlite_url: str, site: NewsSite, log_events: LogEvents
) -> None:
    """An entry whose runs keep dying is given up after max_entry_attempts, not retried forever."""
    from worker.tasks import process_entry

    settings = get_settings()
    (entry_id,) = poll_in_process(site.publish(KEYS[:1]))
    # As if earlier runs had all been killed mid-task.
    with session_scope() as session:
        session.execute(
            sa.update(Entry)
            .where(col(Entry.id) == entry_id)
            .values(attempts=settings.max_entry_attempts)
        )
    # A repeat (here a retry; a redelivered message counts the same way)
    # counts itself before it starts, so it sees the cap and does no work.
    result = process_entry.apply(args=[entry_id], retries=1).get()
    assert result["status"] == "failed"
    assert site.page_requests() == 0
    with session_scope() as session:
        entry = session.get(Entry, entry_id)
        assert entry is not None
        assert entry.status == "failed"
        assert entry.error_class == "attempts_exhausted"
        assert entry.attempts == settings.max_entry_attempts + 1
    log_events().expect("entry_failed", entry_id=entry_id, error_class="attempts_exhausted")
