"""Several worker hosts: two independent ``ingest worker`` processes, each with its own
``--hostname`` and pool, on one real Redis and one real PostgreSQL.

This is how production scales out (docs/operations.md, "Several workers"), so the test
checks what an operator relies on: both hosts take work, nothing is stored twice, the
totals match, and a host that dies mid-task (SIGKILL: no goodbye, no requeue) loses
nothing, because its unacknowledged message (``task_acks_late``) comes back after the
visibility timeout and the other host finishes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from celery import Celery
from sqlmodel import col, select

from tests.integration.helpers import (
    fundus_page,
    processed,
    rss,
    running_celery,
    wait_until,
    worker_env,
)
from tests.support.factories import add_feed
from tests.support.logs import Events
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article, Entry, Story

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]

# Distinct real articles (no two are one story), each long enough to extract.
SHARED = [
    "uk/BBC_2024_08_01",
    "uk/DailyMail_2024_04_27",
    "uk/EuronewsEN_2024_04_30",
    "uk/EveningStandard_2024_05_02",
    "uk/Express_2024_07_18",
    "uk/Metro_2024_07_17",
]
KILLED = ["uk/TheGuardian_2024_02_24", "uk/TheMirror_2024_04_28", "us/APNews_2024_09_03"]


def gated(body: bytes, gate: threading.Event) -> Callable[[BaseHTTPRequestHandler], None]:
    """A page that answers only once ``gate`` is set, so a fetch is in flight when we strike."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        gate.wait(30)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def publish(
    web: LocalWeb, shared_data: Path, name: str, keys: list[str], gate: threading.Event | None
) -> int:
    """Real pages for ``keys`` under /<name>/<n>.html (held until ``gate`` if given) and
    their feed; the feed's id."""
    items = []
    for n, key in enumerate(keys):
        html, record = fundus_page(shared_data, key)
        path = f"/{name}/{n}.html"
        if gate is None:
            web.add_page(path, html, "text/html; charset=utf-8")
        else:
            web.routes[path] = gated(html, gate)
        items.append({"title": record["title"], "link": web.url(path), "guid": web.url(path)})
    web.add_page(f"{name}.xml", rss(items, title=name))
    return add_feed(name=name, url=web.url(f"{name}.xml"))


def page_requests(web: LocalWeb, name: str) -> int:
    return sum(1 for path, _ in list(web.requests) if path.startswith(f"/{name}/"))


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Set at teardown at the latest, so held page handlers let go of their threads."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_hosts_share_the_work_and_a_killed_one_loses_nothing(
    database_url: str,
    broker_url: str,
    web: LocalWeb,
    shared_data: Path,
    gate: threading.Event,
    tmp_path: Path,
) -> None:
    """Both hostnames take tasks, each entry is stored once, and a SIGKILLed host's task
    is redelivered to the other."""
    env = worker_env(
        database_url,
        broker_url,
        # One entry per task, so the work spreads over both hosts message by message.
        INGEST_ENTRY_BATCH_SIZE="1",
        # The killed host's message comes back this soon (kombu scans every second).
        INGEST_BROKER_VISIBILITY_TIMEOUT="6",
    )
    client = Celery(broker=broker_url)
    try:
        # concurrency 1: each host runs one task at a time, so two pages in flight
        # are one on each host.
        with running_celery(env, tmp_path, workers=2, concurrency=1) as celery:
            first, second = celery.workers

            # 1. Both hosts take work from the one queue.
            shared_id = publish(web, shared_data, "shared", SHARED, gate=None)
            client.send_task("worker.tasks.poll_feed", args=[shared_id])
            wait_until(lambda: processed(len(SHARED)), timeout=60, what="shared feed processed")
            stats = client.control.inspect(timeout=5).stats() or {}
            ran = {
                host.split("@")[0]: info["total"].get("worker.tasks.process_entry", 0)
                for host, info in stats.items()
            }
            assert set(ran) == {"w1", "w2"}, stats.keys()  # two distinct hostnames answered
            assert all(count > 0 for count in ran.values()), ran
            assert sum(ran.values()) == len(SHARED)  # each entry's task ran once, on one host
            stored_by = [len(Events.parse(w.log()).named("article_stored")) for w in celery.workers]
            assert all(stored_by), stored_by
            assert sum(stored_by) == len(SHARED)

            # 2. A host dies mid-task: its entry comes back to the other one.
            killed_id = publish(web, shared_data, "killed", KILLED, gate=gate)
            client.send_task("worker.tasks.poll_feed", args=[killed_id])
            wait_until(
                lambda: page_requests(web, "killed") >= 2, timeout=30, what="a page on each host"
            )
            second.kill()  # SIGKILL to its process group: main process and pool child
            gate.set()
            wait_until(
                lambda: processed(len(SHARED) + len(KILLED)),
                timeout=60,
                what="every entry processed by the surviving host",
            )
            assert first.process.poll() is None
    finally:
        client.close()

    with session_scope() as session:
        entries = session.exec(select(Entry)).all()
        articles = session.exec(select(Article)).all()
        stories = session.exec(select(Story)).all()
        killed_attempts = session.exec(
            select(Entry.attempts).where(col(Entry.feed_id) == killed_id)
        ).all()
    total = len(SHARED) + len(KILLED)
    assert [e.status for e in entries] == ["stored"] * total, [(e.url, e.error) for e in entries]
    assert len(articles) == total
    assert len({a.canonical_url for a in articles}) == total
    assert {e.article_id for e in entries} == {a.id for a in articles}
    assert len(stories) == total
    # The killed host's entry ran twice: started there, finished here after redelivery.
    assert max(killed_attempts) >= 2, killed_attempts
    # The surviving host finished the killed feed, including the redelivered entry.
    after_kill = Events.parse(first.log()).named("article_stored")
    killed_ids = {e.id for e in entries if e.feed_id == killed_id}
    assert len([e for e in after_kill if e["entry_id"] in killed_ids]) == len(KILLED)
