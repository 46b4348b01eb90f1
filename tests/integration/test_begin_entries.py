"""A batch loads its entries in one read, and the known articles at their URLs in one more.

``pipeline.begin_entries`` decides, for every entry of a ``process_entries`` batch, what
``begin_entry`` decides for one: gone, already stored, linked to a page stored moments
ago, or to be fetched. These tests run it on a real database (both engines) and count
the statements it sends: two for the batch however many entries it has, where loading
the entries one by one sent two per entry.
"""

from __future__ import annotations

import pytest

from tests.integration.helpers import counted_selects
from tests.support.factories import add_entries, add_feed, feed_item, save_article
from worker import pipeline
from worker.db import session_scope
from worker.models import Entry
from worker.pipeline.entries import KNOWN_URL_NOTE
from worker.settings import get_settings

pytestmark = pytest.mark.integration


def _batch() -> tuple[list[int], dict[str, int]]:
    """Six entries of one feed: three to fetch, one already stored, one linking (with
    tracking junk) to a page stored moments ago, and an id that does not exist."""
    feed_id = add_feed(name="wire")
    urls = {
        "fresh1": "https://news.example/fresh-1",
        "fresh2": "https://news.example/fresh-2",
        "fresh3": "https://news.example/fresh-3",
        "stored": "https://news.example/stored",
        "known": "https://news.example/known?utm_source=rss",
    }
    ids = dict(
        zip(
            urls,
            add_entries(
                feed_id, *(feed_item(guid=name, url=url, title=name) for name, url in urls.items())
            ),
            strict=True,
        )
    )
    known = save_article(url="https://news.example/known")
    with session_scope() as session:
        entry = session.get(Entry, ids["stored"])
        assert entry is not None
        entry.status, entry.article_id = "stored", known.article_id
        session.add(entry)
    ids["gone"] = max(ids.values()) + 1000
    ids["known_article"] = known.article_id
    return [ids[name] for name in ("fresh1", "stored", "fresh2", "known", "gone", "fresh3")], ids


def test_a_batch_is_loaded_in_two_reads_with_each_entry_decided_as_alone(
    database_url: str,
) -> None:
    order, ids = _batch()
    with counted_selects() as selects:
        begun = pipeline.begin_entries(
            entry_ids=order,
            settings=get_settings(),
            delivery=pipeline.Delivery(count_attempt=True),
        )
    assert len(selects) == 2, selects  # the entries, then the known URLs: not two per entry
    assert list(begun) == order
    jobs = {i: b for i, b in begun.items() if isinstance(b, pipeline.EntryJob)}
    assert set(jobs) == {ids["fresh1"], ids["fresh2"], ids["fresh3"]}
    assert jobs[ids["fresh2"]].url == "https://news.example/fresh-2"
    assert jobs[ids["fresh2"]].guid == "fresh2"

    stored, known, gone = begun[ids["stored"]], begun[ids["known"]], begun[ids["gone"]]
    assert isinstance(stored, pipeline.EntryOutcome)
    assert (stored.status, stored.article_id) == ("skipped", ids["known_article"])
    assert isinstance(gone, pipeline.EntryOutcome)
    assert (gone.status, gone.error) == ("skipped", "no such entry")
    assert isinstance(known, pipeline.EntryOutcome)
    assert (known.status, known.action) == ("stored", "known_url")
    assert known.article_id == ids["known_article"]
    with session_scope() as session:
        linked = session.get(Entry, ids["known"])
        assert linked is not None
        assert (linked.status, linked.article_id) == ("stored", ids["known_article"])
        assert (linked.error, linked.attempts) == (KNOWN_URL_NOTE, 1)
        fresh = [session.get(Entry, ids[name]) for name in ("fresh1", "fresh2", "fresh3")]
        assert [e.status for e in fresh if e is not None] == ["pending"] * 3


def test_a_forced_batch_fetches_every_entry_it_has_and_asks_for_no_known_url(
    database_url: str,
) -> None:
    order, ids = _batch()
    with counted_selects() as selects:
        begun = pipeline.begin_entries(
            entry_ids=order, settings=get_settings(), delivery=pipeline.Delivery(force=True)
        )
    assert len(selects) == 1, selects  # an operator's re-crawl fetches even known pages
    jobs = {i for i, b in begun.items() if isinstance(b, pipeline.EntryJob)}
    assert jobs == set(order) - {ids["gone"]}


def test_one_entry_is_begun_as_a_batch_of_one(database_url: str) -> None:
    _, ids = _batch()
    one = pipeline.begin_entry(entry_id=ids["known"], settings=get_settings())
    assert isinstance(one, pipeline.EntryOutcome)
    assert (one.action, one.article_id) == ("known_url", ids["known_article"])
    assert isinstance(
        pipeline.begin_entry(entry_id=ids["fresh3"], settings=get_settings()), pipeline.EntryJob
    )
