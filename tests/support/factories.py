"""Rows for tests, written through the real data-access code (:mod:`worker.store`) into
the database the test's fixture set up. Every function has defaults for what the test
does not care about; a keyword changes one field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker import dedup, store
from worker.classify import Classification, classify
from worker.db import session_scope
from worker.feeds import FeedItem, entry_key
from worker.models import Article, Story

BODY = (
    "Ukraine's air defence forces shot down most of the drones Russia launched overnight at Kyiv, "
    "the air force said on Tuesday, as European leaders met in Paris to discuss security "
    "guarantees and a possible reassurance force after a ceasefire. "
) * 6
TITLE = "Kyiv repels drone attack as leaders discuss guarantees"
PUBLISHED = datetime(2025, 2, 25, 9, 0, tzinfo=UTC)


def add_feed(*, name: str = "feed", url: str | None = None, **fields: Any) -> int:
    """A feed (``store.upsert_feed``: by name, so adding it again updates it); its id."""
    with session_scope() as session:
        feed, _ = store.upsert_feed(
            session, name=name, url=url or f"https://{name}.example/rss", **fields
        )
        assert feed.id is not None
        return feed.id


def feed_item(
    *,
    guid: str | None = "g",
    url: str = "https://news.example/a",
    title: str = "t",
    summary: str | None = None,
    published_at: datetime | None = None,
) -> FeedItem:
    """One item as the feed parser yields it."""
    return FeedItem(
        entry_key=entry_key(guid=guid, url=url, title=title),
        url=url,
        guid=guid,
        title=title,
        summary=summary,
        author=None,
        published_at=published_at,
    )


def add_entries(feed_id: int, *items: FeedItem) -> list[int]:
    """Entries for ``items`` of the feed (``store.add_entries``); the ids of the new ones."""
    with session_scope() as session:
        return store.add_entries(session, feed_id=feed_id, items=items)


def add_entry(*, feed_id: int | None = None, **item: Any) -> int:
    """One pending entry, of a new feed unless ``feed_id`` is given; its id."""
    (entry_id,) = add_entries(feed_id or add_feed(), feed_item(**item))
    return entry_id


def article_record(
    *,
    url: str = "https://news.example/a",
    canonical: str | None = None,
    guid: str | None = None,
    feed_id: int | None = None,
    title: str = TITLE,
    body: str = BODY,
    published_at: datetime | None = PUBLISHED,
    classification: Classification | None = None,
) -> store.ArticleRecord:
    """What the pipeline would store for one extracted page: fingerprinted and
    classified as it does, unless ``classification`` is given."""
    return store.ArticleRecord(
        url=url,
        canonical_url=canonical or url,
        feed_id=feed_id,
        guid=guid,
        title=title,
        body=body,
        summary=None,
        author=None,
        published_at=published_at,
        language="en",
        extraction_method="trafilatura",
        fingerprint=dedup.fingerprint(title=title, body=body, published_at=published_at),
        classification=classification or classify(title=title, body=body, language="en"),
    )


def save_article(**record: Any) -> store.SaveOutcome:
    """Store an :func:`article_record` as the pipeline does (``store.save_article``:
    deduplicated and placed in a story)."""
    with session_scope() as session:
        return store.save_article(session, article_record(**record))


def add_listed_article(
    *,
    n: int,
    feed_id: int | None = None,
    positive: bool = True,
    topics: list[str] | None = None,
    language: str = "en",
    published_at: datetime | None = None,
    story_id: int | None = None,
    classifier_version: str = "test",
    title: str | None = None,
    summary: str | None = None,
    body: str | None = None,
) -> int:
    """An article row whose label, topics and story are set, not decided, for tests of
    the listings (API, CLI): ``article n`` at ``https://news.example/n``, in a story of
    its own unless ``story_id`` is given (``store.refresh_story`` recounts it); its id.
    ``title``, ``summary`` and ``body`` replace the numbered defaults (search tests)."""
    topics = topics or []
    with session_scope() as session:
        if story_id is None:
            story = Story(title=f"story {n}", is_ukraine_security=positive, topics=topics)
            session.add(story)
            session.flush()
            story_id = story.id
        article = Article(
            url=f"https://news.example/{n}",
            canonical_url=f"https://news.example/{n}",
            feed_id=feed_id,
            title=f"article {n}" if title is None else title,
            body=f"body of article {n}" if body is None else body,
            summary=f"summary {n}" if summary is None else summary,
            published_at=published_at,
            language=language,
            extraction_method="trafilatura",
            content_hash=f"{n:064d}",
            is_ukraine_security=positive,
            security_score=0.9 if positive else 0.1,
            topics=topics,
            classifier_version=classifier_version,
            story_id=story_id,
        )
        session.add(article)
        session.flush()
        assert story_id is not None
        store.refresh_story(session, story_id)
        assert article.id is not None
        return article.id
