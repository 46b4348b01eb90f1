"""The soak's invariant checker finds what it claims to find (bench/soakcheck.py).

A checker that cannot fail would make the soak's "0 lost, 0 duplicated" worthless, so
each violation is planted in a small SQLite database and must be reported.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bench.soakcheck import check_invariants, drained
from bench.soakweb import Item
from tests.support.factories import add_entries, add_feed, feed_item, save_article
from worker.db import session_scope

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def item(n: int, *, kind: str = "fresh", hostile: str | None = None) -> Item:
    link = f"http://127.0.0.1:9/a/{n}/{n}.html"
    return Item("soak-0", link, link, f"Title {n}", kind, NOW, hostile)


def enter(feed_id: int, *items: Item) -> None:
    add_entries(feed_id, *(feed_item(guid=i.guid, url=i.link, title=i.title) for i in items))


def store_entry(feed_id: int, it: Item, *, body_words: int = 60) -> None:
    outcome = save_article(url=it.link, guid=it.guid, feed_id=feed_id, title=it.title,
                           body=f"{it.title} " + "word " * body_words)  # fmt: skip
    with session_scope() as session:
        session.execute(
            sa.text("UPDATE entries SET status = 'stored', article_id = :a WHERE guid = :g"),
            {"a": outcome.article_id, "g": it.guid},
        )


def fail_entry(it: Item, *, reason: str | None) -> None:
    with session_scope() as session:
        session.execute(
            sa.text("UPDATE entries SET status = 'failed', error = :r WHERE guid = :g"),
            {"r": reason, "g": it.guid},
        )


def test_a_clean_run_holds_every_invariant(sqlite_url: str) -> None:
    feed = add_feed(name="soak-0")
    stored, hostile = item(1), item(2, kind="hostile", hostile="404")
    enter(feed, stored, hostile)
    store_entry(feed, stored)
    fail_entry(hostile, reason="HTTP 404")
    items = [stored, hostile]
    assert drained(sqlite_url, items, {"soak-0": feed})["done"]
    report = check_invariants(sqlite_url, items, {"soak-0": feed}, metrics_url=None,
                              fault_phase_end=NOW)  # fmt: skip
    assert report["violations"] == []
    assert (report["lost"], report["duplicated"], report["latency_samples"]) == (0, 0, 1)


def test_lost_pending_failed_ordinary_pages_and_bad_counters_are_reported(
    sqlite_url: str,
) -> None:
    feed = add_feed(name="soak-0")
    stored, never_seen, pending, unexplained, ordinary = (item(n) for n in range(1, 6))
    enter(feed, stored, pending, unexplained, ordinary)
    store_entry(feed, stored)
    fail_entry(unexplained, reason=None)
    fail_entry(ordinary, reason="HTTP 500")
    with session_scope() as session:
        session.execute(sa.text("UPDATE stories SET article_count = 7"))
    items = [stored, never_seen, pending, unexplained, ordinary]

    state = drained(sqlite_url, items, {"soak-0": feed})
    assert not state["done"]
    assert (state["missing_entries"], state["pending"]) == (1, 1)

    report = check_invariants(sqlite_url, items, {"soak-0": feed}, metrics_url=None,
                              fault_phase_end=NOW)  # fmt: skip
    assert report["lost"] == 3  # never seen, still pending, failed without a reason
    assert report["normal_failed"] == 1
    text = " | ".join(report["violations"])
    assert "3 items lost" in text
    assert "1 entries stuck pending" in text
    assert "1 ordinary pages failed" in text
    assert "counters differ from a recount" in text
