"""A URL stored moments ago and linked from a second feed is not fetched again.

Real local HTTP server and database: the page's request count is what the
publisher would see, and the entries and articles rows are what downstream
apps read.
"""

from __future__ import annotations

from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from tests.integration.helpers import SEEDS, detached, rss
from tests.support.factories import add_feed
from worker import pipeline
from worker.db import session_scope
from worker.fetch import Fetcher
from worker.localweb import LocalWeb
from worker.models import Article, Entry, utcnow
from worker.settings import Settings, get_settings

pytestmark = pytest.mark.integration


STORY = "news/macron-trump-security-guarantees.html"  # the seed page's own canonical path


class CountingPage:
    """The seed article at its canonical URL, counting the requests it answers."""

    def __init__(self, web: LocalWeb) -> None:
        html = (SEEDS / "seed-article.html").read_bytes()
        self.body = html.replace(b"{{BASE_URL}}", web.base_url.encode())
        self.requests = 0
        web.routes["/" + STORY] = self.handle

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(self.body)))
        h.end_headers()
        h.wfile.write(self.body)


def _entries_for_two_feeds(web: LocalWeb, settings: Settings, fetcher: Fetcher) -> list[int]:
    """Two feeds whose one item links to the same page (the second with tracking junk)."""
    ids: list[int] = []
    for name, link in (
        ("wire", web.url(STORY)),
        ("partner", web.url(STORY) + "?utm_source=partner&utm_medium=rss"),
    ):
        web.add_page(f"{name}.xml", rss([{"title": "Security guarantees", "link": link}]))
        feed_id = add_feed(name=name, url=web.url(f"{name}.xml"))
        outcome = pipeline.poll_feed(feed_id=feed_id, fetcher=fetcher, settings=settings, owner="t")
        assert len(outcome.new_entry_ids) == 1
        ids += outcome.new_entry_ids
    return ids


def _process(
    entry_id: int, fetcher: Fetcher, settings: Settings, **kw: bool
) -> pipeline.EntryOutcome:
    return pipeline.process_entry(
        entry_id=entry_id, fetcher=fetcher, settings=settings, delivery=pipeline.Delivery(**kw)
    )


def _entry(entry_id: int) -> Entry:
    return detached(Entry, entry_id)


def test_second_feed_linking_a_fresh_url_is_linked_without_a_fetch(
    database_url: str, web: LocalWeb
) -> None:
    page = CountingPage(web)
    settings = get_settings()
    assert settings.refetch_after_seconds > 0  # the default links known URLs
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        first_id, second_id = _entries_for_two_feeds(web, settings, fetcher)
        first = _process(first_id, fetcher, settings)
        second = _process(second_id, fetcher, settings, count_attempt=True)  # a first delivery

    assert page.requests == 1
    assert first.action == "created"
    assert second.action == "known_url"
    assert second.status == "stored"
    assert second.article_id == first.article_id
    assert second.is_ukraine_security is True  # the stored article's label, for the metrics
    linked = _entry(second_id)
    assert (linked.status, linked.article_id, linked.error_class) == (
        "stored",
        first.article_id,
        "known_url",
    )
    assert linked.attempts == 1  # counted in the linking write
    with session_scope() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Article)).scalar_one() == 1


def test_known_url_is_fetched_again_after_the_window_or_when_forced(
    database_url: str, web: LocalWeb
) -> None:
    page = CountingPage(web)
    settings = get_settings()
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        first_id, second_id = _entries_for_two_feeds(web, settings, fetcher)
        first = _process(first_id, fetcher, settings)
        with session_scope() as session:  # the article was fetched two hours ago
            session.execute(
                sa.update(Article)
                .where(col(Article.id) == first.article_id)
                .values(fetched_at=utcnow() - timedelta(seconds=settings.refetch_after_seconds * 2))
            )
        second = _process(second_id, fetcher, settings)
        assert page.requests == 2
        assert second.action == "updated"
        assert second.article_id == first.article_id
        assert _entry(second_id).error_class is None

        # Fresh again now; an operator's forced re-crawl still fetches.
        forced = _process(second_id, fetcher, settings, force=True)
        assert page.requests == 3
        assert forced.action == "updated"


def test_refetch_after_zero_always_fetches(database_url: str, web: LocalWeb) -> None:
    page = CountingPage(web)
    settings = get_settings().model_copy(update={"refetch_after_seconds": 0})
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        first_id, second_id = _entries_for_two_feeds(web, settings, fetcher)
        _process(first_id, fetcher, settings)
        second = _process(second_id, fetcher, settings)
    assert page.requests == 2
    assert second.action == "updated"
    with session_scope() as session:
        rows = session.exec(select(Entry.status)).all()
    assert rows == ["stored", "stored"]
