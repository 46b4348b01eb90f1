"""The whole pipeline with real parts: redis-server, Celery worker and beat
processes (started through the `ingest` CLI, as in the containers), a local
HTTP server with real news pages, and SQLite or PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from tests.integration.helpers import (
    fundus_page,
    processed,
    rss,
    running_celery,
    serve_seed,
    wait_until,
    worker_env,
)
from tests.support.factories import add_feed
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article, Entry, Feed, FeedPoll, Story, utcnow

pytestmark = pytest.mark.integration

POSITIVE = ["ca/GlobalNews_2026_05_24"]  # Russian missile strike on Kyiv
NEGATIVE = [
    "uk/TheGuardian_2024_02_24",  # Valencia fire
    "us/Reuters_2024_03_07",  # Israeli tank fire on reporters: another war
    "us/APNews_2023_04_28",  # Mexico's economy
]


def _build_web(web: LocalWeb, shared_data: Path) -> dict[str, str]:
    serve_seed(web)
    titles: dict[str, str] = {}
    items = [
        {
            "title": "Media: French president’s diplomatic victory on Ukraine falls short",
            "link": web.url("seed-article.html?utm_source=rss&utm_medium=feed"),
            "guid": "seed-1",
            "description": "Macron and Trump on security guarantees.",
        }
    ]
    for key in POSITIVE + NEGATIVE:
        html, record = fundus_page(shared_data, key)
        path = f"pages/{key.replace('/', '_')}.html"
        web.add_page(path, html, "text/html; charset=utf-8")
        titles[key] = record["title"]
        items.append({"title": record["title"], "link": web.url(path), "guid": key})
    # A syndicated copy of the Kyiv story under another URL (no GUID), and the
    # same seed link again with other tracking parameters.
    html, record = fundus_page(shared_data, POSITIVE[0])
    web.add_page("mirror/kyiv-strike.html", html, "text/html; charset=utf-8")
    items.append({"title": record["title"], "link": web.url("mirror/kyiv-strike.html")})
    items.append({"title": "Seed again", "link": web.url("seed-article.html?fbclid=abc#top")})
    web.add_page("feed.xml", rss(items))
    return titles


def test_pipeline_end_to_end(
    database_url: str, broker_url: str, web: LocalWeb, shared_data: Path, tmp_path: Path
) -> None:
    _build_web(web, shared_data)
    feed_id = add_feed(name="local", url=web.url("feed.xml"))
    with running_celery(worker_env(database_url, broker_url), tmp_path, beat=True):
        wait_until(processed, timeout=120, what="all entries processed")

        with session_scope() as session:
            articles = session.exec(select(Article)).all()
            entries = session.exec(select(Entry)).all()
            failed = [(e.url, e.error) for e in entries if e.status == "failed"]
            assert not failed, failed
            by_title = {a.title: a for a in articles}
            # 1 seed + 4 fundus pages + 1 syndicated copy; the repeated seed
            # link canonicalises to the seed's URL and is not stored twice.
            assert len(articles) == 6, sorted(by_title)
            canonical = [a.canonical_url for a in articles]
            assert len(set(canonical)) == len(canonical)

            # Both seed items share one article; the workers race, so either
            # entry's GUID may be the article's. Find it by its canonical URL.
            seeds = [
                a
                for a in articles
                if a.canonical_url.endswith("/news/macron-trump-security-guarantees.html")
            ]
            assert len(seeds) == 1, [a.canonical_url for a in articles]
            seed = seeds[0]
            seed_entries = [e for e in entries if e.article_id == seed.id]
            assert len(seed_entries) == 2, [(e.url, e.article_id) for e in entries]
            assert seed.is_ukraine_security
            assert seed.security_score >= 0.8
            assert {"security_guarantees", "peacekeeping_force"} <= set(seed.topics)
            assert seed.extraction_method == "trafilatura"

            for key in POSITIVE:
                article = next(a for a in articles if a.guid == key)
                assert article.is_ukraine_security, (key, article.evidence)
            for key in NEGATIVE:
                article = next(a for a in articles if a.guid == key)
                assert not article.is_ukraine_security, (key, article.evidence)

            # Whichever of the two was stored first is the original: the
            # workers process both feeds' items in parallel.
            pair = sorted(
                (
                    next(a for a in articles if a.guid == POSITIVE[0]),
                    next(a for a in articles if a.url.endswith("mirror/kyiv-strike.html")),
                ),
                key=lambda a: a.id or 0,
            )
            original, copy = pair
            assert original.duplicate_of_id is None
            assert copy.duplicate_of_id == original.id
            assert copy.story_id == original.story_id
            story = session.get(Story, original.story_id)
            assert story is not None
            assert story.article_count == 2

            polls_before = len(session.exec(select(FeedPoll)).all())
            entries_before = len(entries)

        # Poll again now: nothing new may be stored.
        with session_scope() as session:
            session.execute(
                sa.update(Feed).where(col(Feed.id) == feed_id).values(next_poll_at=utcnow())
            )

        def polled_again() -> bool:
            with session_scope() as session:
                return len(session.exec(select(FeedPoll)).all()) > polls_before

        wait_until(polled_again, timeout=60, what="a second poll")
        wait_until(processed, timeout=60, what="processing after second poll")
        with session_scope() as session:
            assert len(session.exec(select(Article)).all()) == 6
            assert len(session.exec(select(Entry)).all()) == entries_before
            last = session.exec(select(FeedPoll).order_by(col(FeedPoll.id).desc())).first()
            assert last is not None
            assert last.status == "ok"
            assert last.entries_new == 0
            feed_row = session.get(Feed, feed_id)
            assert feed_row is not None
            assert feed_row.state == "healthy"
            assert feed_row.next_poll_at is not None
            assert feed_row.next_poll_at > utcnow() + timedelta(seconds=60)
