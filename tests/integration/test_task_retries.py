"""Retry policy through real Celery workers: transient errors retry with backoff,
permanent ones are recorded once, and a missing page falls back to the feed summary."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from itertools import pairwise
from pathlib import Path

import pytest
from sqlmodel import select

from tests.integration.helpers import (
    SEEDS,
    processed,
    rss,
    running_celery,
    wait_until,
    worker_env,
)
from tests.support.factories import add_feed
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article, Entry

pytestmark = pytest.mark.integration


def _flaky(
    web: LocalWeb,
    failures: int,
    body: bytes,
    *,
    path: str = "/flaky.html",
    status: int = 503,
    retry_after: str = "0",
) -> None:
    """A page that answers ``status`` with Retry-After ``failures`` times, then 200."""
    calls = {"n": 0}

    def handler(request: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            request.send_response(status)
            request.send_header("Retry-After", retry_after)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(200)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    web.routes[path] = handler


def test_transient_retried_permanent_recorded(
    broker_url: str, sqlite_url: str, web: LocalWeb, tmp_path: Path
) -> None:
    seed_html = (SEEDS / "seed-article.html").read_bytes()
    _flaky(web, failures=2, body=seed_html)
    broken_html = seed_html.replace(b"macron-trump-security-guarantees", b"broken-copy")
    _flaky(web, failures=3, body=broken_html, path="/broken.html", status=500, retry_after="")
    limited_html = seed_html.replace(b"macron-trump-security-guarantees", b"limited-copy")
    _flaky(web, failures=1, body=limited_html, path="/limited.html", status=429, retry_after="3")
    web.add_page(
        "feed.xml",
        rss(
            [
                {"title": "Flaky seed", "link": web.url("flaky.html"), "guid": "flaky"},
                {"title": "Limited", "link": web.url("limited.html"), "guid": "limited"},
                {
                    "title": "Ceasefire talks resume in Istanbul",
                    "link": web.url("missing-with-summary.html"),
                    "guid": "gone-1",
                    "description": "Ukrainian and Russian delegations resumed ceasefire "
                    "talks in Istanbul on Monday, with prisoner exchanges on the agenda.",
                },
                {"title": "Gone", "link": web.url("missing.html"), "guid": "gone-2"},
                {"title": "Broken", "link": web.url("broken.html"), "guid": "broken"},
            ]
        ),
    )
    add_feed(name="local", url=web.url("feed.xml"))
    base = 0.5  # the first retry's wait (INGEST_RETRY_BASE_SECONDS), small to keep this fast
    env = worker_env(sqlite_url, broker_url, INGEST_RETRY_BASE_SECONDS=str(base))

    with running_celery(env, tmp_path, beat=True) as celery:
        wait_until(lambda: processed(5), timeout=90, what="entries processed")
    requests = [path for path, _t in web.requests]
    limited_times = [t for path, t in web.requests if path == "/limited.html"]
    broken_times = [t for path, t in web.requests if path == "/broken.html"]

    with session_scope() as session:
        entries = {e.guid: e for e in session.exec(select(Entry)).all()}
        articles = {a.guid: a for a in session.exec(select(Article)).all()}
    # Transient 503s were retried until the page came through.
    assert requests.count("/flaky.html") == 3
    assert entries["flaky"].status == "stored"
    assert articles["flaky"].extraction_method == "trafilatura"
    assert articles["flaky"].is_ukraine_security
    # A 429 is retried no sooner than its Retry-After (3 s), not the 1 s backoff.
    assert entries["limited"].status == "stored"
    assert len(limited_times) == 2
    assert limited_times[1] - limited_times[0] >= 3.0
    # A 404 is permanent: asked once, and the feed summary is stored instead.
    assert requests.count("/missing-with-summary.html") == 1
    assert entries["gone-1"].status == "stored"
    assert entries["gone-1"].error is not None
    assert "404" in entries["gone-1"].error
    assert articles["gone-1"].extraction_method == "feed_summary"
    assert "prisoner exchanges" in articles["gone-1"].body
    # With no summary to fall back to, the entry is failed with its reason.
    assert requests.count("/missing.html") == 1
    assert entries["gone-2"].status == "failed"
    assert entries["gone-2"].error_class == "http_4xx"
    assert entries["gone-2"].http_status == 404
    assert "gone-2" not in articles
    # A page answering 500 is asked again no sooner than the base delay, and later each
    # time: the jittered backoff no longer rounds to zero ("Retry in 0s").
    gaps = [later - earlier for earlier, later in pairwise(broken_times)]
    assert len(broken_times) == 4  # three 500s, then the page
    assert entries["broken"].status == "stored"
    assert gaps[0] >= base  # the first retry (the entry leaves its batch)
    assert gaps[1] >= base  # the second: between one and two bases
    assert gaps[2] >= 2 * base  # the third: between two and four
    assert "Retry in 0s" not in celery.log()
    # The items went out in batches; each retried entry left its batch on its
    # own, and every attempt is counted once per entry.
    assert entries["flaky"].attempts == 3
    assert entries["limited"].attempts == 2
    assert entries["gone-1"].attempts == entries["gone-2"].attempts == 1
    # And the log says so: each retried entry left the batch with its own countdown
    # (the 429's its Retry-After), and the 404 without a summary failed for good.
    events = celery.events()
    events.expect("entry_retry_scheduled", entry_id=entries["flaky"].id)
    limited = events.expect("entry_retry_scheduled", entry_id=entries["limited"].id)
    assert limited["countdown"] >= 3.0
    events.expect("entry_failed", entry_id=entries["gone-2"].id, error_class="http_4xx")
    assert not events.named("entry_failed", entry_id=entries["gone-1"].id)
