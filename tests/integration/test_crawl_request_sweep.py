"""A re-crawl request whose message was lost is sent again by beat, not left queued.

The request row is the ledger, like an entry: ``ingest recrawl`` records it and then
sends ``run_crawl_request``. If Redis restarts before a worker takes the message, or a
restore leaves the old queue behind, the row stays ``queued`` for ever unless beat
notices it. Here the message is never sent at all.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.helpers import rss, running_celery, wait_until, worker_env
from tests.support.factories import add_feed
from worker import operations, store
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import CrawlRequest, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def record_without_sending(feed: str, *, age_seconds: float) -> int:
    with session_scope() as session:
        request = store.create_crawl_request(
            session, requested_by="lost-message", kind="feed", target=feed, force=False
        )
        session.execute(
            sa.update(CrawlRequest)
            .where(CrawlRequest.id == request.id)  # type: ignore[arg-type]
            .values(requested_at=utcnow() - timedelta(seconds=age_seconds))
        )
        assert request.id is not None
        return request.id


def test_beat_resends_a_request_still_queued_after_the_stale_time(
    broker_url: str, sqlite_url: str, web: LocalWeb, tmp_path: Path
) -> None:
    page = web.add_page("a.html", "<html><body><p>" + "Kyiv ceasefire talks. " * 40 + "</p>")
    web.add_page("feed.xml", rss([{"title": "Talks", "link": page}]))
    add_feed(name="lost", url=web.url("feed.xml"), enabled=False)  # only the request polls it
    old = record_without_sending("lost", age_seconds=600)
    fresh = record_without_sending("lost", age_seconds=0)

    with session_scope() as session:
        assert store.queued_crawl_request_ids(
            session, older_than=utcnow() - timedelta(seconds=300)
        ) == [old]

    env = worker_env(sqlite_url, broker_url, INGEST_STALE_PENDING_SECONDS="300")
    with running_celery(env, tmp_path, beat=True):
        done = wait_until(
            lambda: operations.crawl_request(old).status == "done" or None,
            timeout=60, what="the lost request to be sent again and finish",
        )  # fmt: skip
        assert done
        request = operations.crawl_request(old)
        assert (request.total, request.done) == (1, 1)
        # The younger one is not resent yet: its message may still be on its way.
        assert operations.crawl_request(fresh).status == "queued"


def test_a_second_delivery_of_a_request_keeps_its_totals(
    broker_url: str, sqlite_url: str, web: LocalWeb
) -> None:
    """Found by CI: beat resent a request whose first delivery was merely slow; the second
    expansion polled the feed, found nothing new and set the request done with 0 entries."""
    from worker.pipeline import expand_crawl_request
    from worker.settings import get_settings
    from worker.tasks import get_fetcher

    page = web.add_page("a.html", "<html><body><p>" + "Kyiv ceasefire talks. " * 40 + "</p>")
    web.add_page("feed.xml", rss([{"title": "Talks", "link": page}]))
    add_feed(name="twice", url=web.url("feed.xml"), enabled=False)
    request_id = record_without_sending("twice", age_seconds=0)

    def expand() -> tuple[str, list[int]]:
        expansion = expand_crawl_request(
            request_id, fetcher=get_fetcher(), settings=get_settings(), owner="test"
        )
        return expansion.status, expansion.entry_ids

    status, first = expand()
    assert status == "running"
    assert len(first) == 1
    # Redelivered before the entry ran: the same entry again, the totals kept.
    assert expand() == ("running", first)
    assert (
        operations.crawl_request(request_id).total,
        operations.crawl_request(request_id).status,
    ) == (1, "running")
    # After the request finished, a late duplicate changes nothing.
    with session_scope() as session:
        store.fail_crawl_request(session, request_id=request_id, reason="stopped by the test")
    assert expand() == ("failed", [])
    assert operations.crawl_request(request_id).total == 1
