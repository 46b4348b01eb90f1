"""Read queries for operators and downstream apps: listing, counting, stats.

Nothing here writes. Listing uses keyset pagination (``WHERE key < last key``)
rather than OFFSET, so a page does not shift when new articles arrive while a
client is paging; progress of a reclassification is counted with queries, not
id lists, so following a run over 100k articles costs one COUNT per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ..models import (
    Article,
    Entry,
    Feed,
    FeedPoll,
    Story,
    UTCDateTime,
    article_sort_time,
    utcnow,
)
from ..search import QueryError, parse_query
from .feeds import list_feeds
from .search import apply_search
from .sql import json_array_contains
from .subscriptions import subscription_counts

LABEL_POSITIVE = "ukraine-security"


LABEL_NEGATIVE = "other"


@dataclass(frozen=True)
class ArticleFilter:
    """What a caller may filter articles by; ``None`` means "any"."""

    label: str | None = None  # ukraine-security | other
    topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    feed: str | None = None
    language: str | None = None
    story_id: int | None = None
    query: str | None = None  # full-text search (worker.search); blank = none


SortKey = datetime | float | None
"""A listed article's position: its sort time (``published``, ``id``) or its rank
(``relevance``, higher first)."""


@dataclass(frozen=True)
class StoryFilter:
    """What a caller may filter stories by; ``None`` means "any"."""

    label: str | None = None  # ukraine-security | other
    topic: str | None = None
    since: datetime | None = None  # last seen at or after
    until: datetime | None = None  # first seen before
    min_articles: int = 1


def article_sort_key() -> Any:
    """Publication time, or when we stored it for articles without a date: the
    expression ``ix_articles_newest`` indexes (:func:`worker.models.article_sort_time`)."""
    return article_sort_time()


def list_articles(
    session: Session,
    *,
    where: ArticleFilter,
    limit: int,
    sort: str = "published",
    after: tuple[SortKey, int] | None = None,
) -> list[tuple[Article, SortKey]]:
    """One page of articles, best first, with each row's sort key.

    ``sort="published"`` orders by :func:`article_sort_key` then id, newest first;
    ``sort="id"`` by id alone (the order articles were stored); ``sort="relevance"``
    by the search's rank, then id (it needs ``where.query``). ``after`` is the
    (sort key, id) of the last row of the previous page. Raises
    :class:`~worker.search.QueryError` for a search that cannot run.
    """
    key = article_sort_key()
    query: Any = select(Article)
    search = parse_query(where.query)
    rank = None
    if search is not None:
        query, rank = apply_search(session, query, search)
    if where.label is not None:
        query = query.where(col(Article.is_ukraine_security).is_(where.label == LABEL_POSITIVE))
    if where.topic is not None:
        query = query.where(json_array_contains(session, Article.topics, where.topic))
    if where.since is not None:
        query = query.where(key >= where.since)
    if where.until is not None:
        query = query.where(key < where.until)
    if where.language is not None:
        query = query.where(col(Article.language) == where.language)
    if where.story_id is not None:
        query = query.where(col(Article.story_id) == where.story_id)
    if where.feed is not None:
        # The feed's id as a scalar subquery rather than a join: `feed_id = (one value)`
        # lets both planners read ix_articles_feed_newest in order from the cursor. With
        # the join, PostgreSQL read ix_articles_newest and discarded other feeds' rows.
        feed_id = sa.select(col(Feed.id)).where(col(Feed.name) == where.feed).scalar_subquery()
        query = query.where(col(Article.feed_id) == feed_id)
    if sort == "relevance":
        if rank is None:
            raise QueryError("sorting by relevance needs a search")
        query = query.add_columns(rank)
        if after is not None:
            query = query.where(
                sa.or_(rank < after[0], sa.and_(rank == after[0], col(Article.id) < after[1]))
            )
        query = query.order_by(rank.desc(), col(Article.id).desc())
    elif sort == "id":
        query = query.add_columns(key)
        if after is not None:
            query = query.where(col(Article.id) < after[1])
        query = query.order_by(col(Article.id).desc())
    else:
        query = query.add_columns(key)
        if after is not None and after[0] is not None:
            # The keyset as a row value, not `key < k OR (key = k AND id < i)`, which
            # both planners can only apply row by row from the newest article on, so a
            # deep page read every newer row. PostgreSQL starts its index scan at the
            # row value; SQLite uses row values only on plain columns, not on an
            # expression, and seeks with the redundant `key <= k` instead.
            last = sa.literal(after[0], UTCDateTime())
            query = query.where(
                key <= last, sa.tuple_(key, col(Article.id)) < sa.tuple_(last, after[1])
            )
        query = query.order_by(key.desc(), col(Article.id).desc())
    rows = session.execute(query.limit(limit)).all()
    return [(row[0], row[1]) for row in rows]


def list_stories(
    session: Session,
    *,
    where: StoryFilter,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Story]:
    """One page of stories, newest first by id (ids grow as stories are first seen)."""
    query = select(Story)
    if where.label is not None:
        query = query.where(col(Story.is_ukraine_security).is_(where.label == LABEL_POSITIVE))
    if where.topic is not None:
        query = query.where(json_array_contains(session, Story.topics, where.topic))
    if where.since is not None:
        query = query.where(col(Story.last_seen_at) >= where.since)
    if where.until is not None:
        query = query.where(col(Story.first_seen_at) < where.until)
    if where.min_articles > 1:
        query = query.where(col(Story.article_count) >= where.min_articles)
    if before_id is not None:
        query = query.where(col(Story.id) < before_id)
    return list(session.exec(query.order_by(col(Story.id).desc()).limit(limit)).all())


def story_articles(session: Session, story_id: int) -> list[Article]:
    return list(
        session.exec(
            select(Article).where(col(Article.story_id) == story_id).order_by(col(Article.id))
        ).all()
    )


def feed_names(session: Session) -> dict[int, str]:
    return {int(i): n for i, n in session.execute(sa.select(col(Feed.id), col(Feed.name))).all()}


@dataclass
class FeedStats:
    """A feed's health next to what it has produced."""

    feed: Feed
    entries: dict[str, int]
    articles: int
    positives: int
    polls_24h: int
    poll_errors_24h: int


def feed_stats(session: Session, *, now: datetime | None = None) -> list[FeedStats]:
    """Per-feed health and counts, from a few grouped queries (not one per feed)."""
    now = now or utcnow()
    day_ago = now - timedelta(days=1)
    entries: dict[int, dict[str, int]] = {}
    for feed_id, status, count in session.execute(
        sa.select(col(Entry.feed_id), col(Entry.status), sa.func.count())
        .where(col(Entry.feed_id).is_not(None))
        .group_by(col(Entry.feed_id), col(Entry.status))
    ).all():
        entries.setdefault(int(feed_id), {})[str(status)] = int(count)
    articles: dict[int, tuple[int, int]] = {}
    positive = sa.func.sum(sa.case((col(Article.is_ukraine_security).is_(True), 1), else_=0))
    for feed_id, count, positives in session.execute(
        sa.select(col(Article.feed_id), sa.func.count(), positive)
        .where(col(Article.feed_id).is_not(None))
        .group_by(col(Article.feed_id))
    ).all():
        articles[int(feed_id)] = (int(count), int(positives or 0))
    polls: dict[int, tuple[int, int]] = {}
    errors = sa.func.sum(sa.case((col(FeedPoll.status) == "error", 1), else_=0))
    for feed_id, count, failed in session.execute(
        sa.select(col(FeedPoll.feed_id), sa.func.count(), errors)
        .where(col(FeedPoll.started_at) >= day_ago)
        .group_by(col(FeedPoll.feed_id))
    ).all():
        polls[int(feed_id)] = (int(count), int(failed or 0))
    result = []
    for feed in list_feeds(session):
        assert feed.id is not None
        n_articles, n_positive = articles.get(feed.id, (0, 0))
        n_polls, n_errors = polls.get(feed.id, (0, 0))
        result.append(
            FeedStats(
                feed=feed,
                entries=entries.get(feed.id, {}),
                articles=n_articles,
                positives=n_positive,
                polls_24h=n_polls,
                poll_errors_24h=n_errors,
            )
        )
    return result


def totals(session: Session) -> dict[str, Any]:
    """Whole-database counts: what the stats command and the metrics gauges show."""
    positive = sa.func.sum(sa.case((col(Article.is_ukraine_security).is_(True), 1), else_=0))
    dup = sa.func.sum(sa.case((col(Article.duplicate_of_id).is_not(None), 1), else_=0))
    n_articles, n_positive, n_dup = session.execute(
        sa.select(sa.func.count(), positive, dup).select_from(Article)
    ).one()
    entries = {
        str(s): int(c)
        for s, c in session.execute(
            sa.select(col(Entry.status), sa.func.count()).group_by(col(Entry.status))
        ).all()
    }
    feeds = {
        str(s): int(c)
        for s, c in session.execute(
            sa.select(col(Feed.state), sa.func.count()).group_by(col(Feed.state))
        ).all()
    }
    stories = int(session.execute(sa.select(sa.func.count()).select_from(Story)).scalar_one())
    return {
        "articles": int(n_articles),
        "ukraine_security": int(n_positive or 0),
        "exact_duplicates": int(n_dup or 0),
        "stories": stories,
        "entries": entries,
        "feeds": feeds,
        "subscriptions": subscription_counts(session),
    }


def article_ids_since(
    session: Session, *, since: datetime | None, only_outdated_version: str | None = None
) -> list[int]:
    query = select(Article.id).order_by(col(Article.id))
    if since is not None:
        query = query.where(col(Article.fetched_at) >= since)
    if only_outdated_version is not None:
        query = query.where(col(Article.classifier_version) != only_outdated_version)
    return [int(i) for i in session.exec(query).all() if i is not None]


def count_outdated(session: Session, *, version: str, since: datetime | None) -> int:
    query = sa.select(sa.func.count()).select_from(Article)
    query = query.where(col(Article.classifier_version) != version)
    if since is not None:
        query = query.where(col(Article.fetched_at) >= since)
    return int(session.execute(query).scalar_one())


def count_touched(
    session: Session, *, updated_since: datetime, since: datetime | None, max_id: int
) -> int:
    query = sa.select(sa.func.count()).select_from(Article)
    query = query.where(col(Article.updated_at) >= updated_since, col(Article.id) <= max_id)
    if since is not None:
        query = query.where(col(Article.fetched_at) >= since)
    return int(session.execute(query).scalar_one())


def feed_health_counts(session: Session) -> dict[str, int]:
    """Number of feeds per state (healthy, failing, disabled) for operators and metrics."""
    rows = session.execute(
        sa.select(col(Feed.state), sa.func.count()).group_by(col(Feed.state))
    ).all()
    return {str(state): int(count) for state, count in rows}
