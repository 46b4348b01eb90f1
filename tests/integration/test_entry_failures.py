"""Entries with no article to store, processed in this process against a real local
server and database: each ends ``failed`` with the class of its failure, on the row
(what an operator reads) and in the ``entry_failed`` log event (what an alert reads)."""

from __future__ import annotations

import threading

import pytest

from tests.integration.helpers import detached, hanging_page
from tests.support.factories import add_entry
from tests.support.logs import LogEvents
from worker import pipeline
from worker.fetch import Fetcher
from worker.localweb import LocalWeb
from worker.models import Entry
from worker.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("page", "error_class", "http_status"),
    [
        ("<html><head><title>x</title></head><body></body></html>", "extraction_failed", None),
        (None, "http_4xx", 404),  # nothing served at the URL
        ("silent", "timeout", None),  # connects, never answers
    ],
    ids=["no-text", "not-found", "timeout"],
)
def test_an_entry_without_text_or_summary_fails_with_its_class(
    sqlite_url: str,
    web: LocalWeb,
    release: threading.Event,
    log_events: LogEvents,
    page: str | None,
    error_class: str,
    http_status: int | None,
) -> None:
    if page == "silent":
        web.routes["/page.html"] = hanging_page(release)
    elif page is not None:
        web.add_page("page.html", page)
    entry_id = add_entry(url=web.url("page.html"), summary=None)
    settings = get_settings().model_copy(update={"read_timeout": 0.5})
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        outcome = pipeline.process_entry(
            entry_id=entry_id,
            fetcher=fetcher,
            settings=settings,
            # The last attempt: a timeout is not retried, and there is no summary.
            delivery=pipeline.Delivery(final_attempt=True, count_attempt=True),
        )
    assert outcome.status == "failed"
    entry = detached(Entry, entry_id)
    assert (entry.status, entry.error_class, entry.http_status) == (
        "failed",
        error_class,
        http_status,
    )
    assert entry.attempts == 1
    log_events().expect("entry_failed", entry_id=entry_id, error_class=error_class)
