"""The alert rules against a real scrape: after real polls (one feed answering 500, one
with new items) and a paused webhook subscription, the API's GET /metrics has a series for
every selector of deploy/prometheus/alerts.yaml, with the very labels the rules match."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest
from fastapi.testclient import TestClient

from tests.integration.helpers import rss
from tests.support.factories import add_feed
from tests.support.monitoring import EXTERNAL, alert_rules, scraped, selectors
from worker import operations, pipeline
from worker.fetch import Fetcher
from worker.localweb import LocalWeb
from worker.schemas import SubscriptionIn
from worker.settings import get_settings

pytestmark = pytest.mark.integration

# The worker's counters come from a real `ingest worker` scrape in
# tests/integration/test_cli.py::test_recrawl_reclassify_and_worker_metrics.
WORKER_METRICS = {"ingest_articles_stored_total"}


def _server_error(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(500)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def test_every_alert_selector_matches_the_real_api_metrics(sqlite_url: str, web: LocalWeb) -> None:
    web.routes["/broken.xml"] = _server_error
    items = [
        {"title": f"Item {n}", "link": web.url(f"item{n}.html"), "guid": f"g{n}"} for n in range(3)
    ]
    web.add_page("feed.xml", rss(items))
    settings = get_settings()
    broken = add_feed(name="broken", url=web.url("broken.xml"))
    working = add_feed(name="working", url=web.url("feed.xml"))
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        failed = pipeline.poll_feed(feed_id=broken, fetcher=fetcher, settings=settings, owner="t")
        polled = pipeline.poll_feed(feed_id=working, fetcher=fetcher, settings=settings, owner="t")
    assert (failed.status, polled.status, len(polled.new_entry_ids)) == ("error", "ok", 3)
    created = operations.add_subscription(SubscriptionIn(url=web.url("hook")))
    operations.pause_subscription(created.id)

    from worker.api import create_app

    with TestClient(create_app()) as client:
        samples = scraped(client.get("/metrics").text)

    checked = set()
    for rule in alert_rules():
        for selector in selectors(rule["expr"]):
            if selector.name in EXTERNAL or selector.name in WORKER_METRICS:
                continue
            wanted = selector.equalities()
            assert any(wanted.items() <= labels.items() for labels in samples[selector.name]), (
                f"{rule['alert']}: no {selector.name} series with {wanted}"
            )
            checked.add(selector.name)
    assert checked == {"ingest_db_feeds", "ingest_db_subscriptions", "ingest_db_entries"}
    # The failing feed got there through a real poll of a server answering 500.
    assert sorted(labels["state"] for labels in samples["ingest_db_feeds"]) == [
        "failing",
        "healthy",
    ]
