"""Data access: the only module that writes SQL.

Every write is safe to repeat: rows are found by their natural keys (feed URL,
entry key, canonical URL, feed+GUID) and updated instead of duplicated, and the
database's unique constraints back that up when two workers race. Story
assignment runs under a named row lock (:class:`worker.models.Lock`) so two
workers storing copies of the same story at the same moment still end in one
story, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from . import dedup
from .classify import Classification
from .feeds import FeedItem
from .models import (
    Article,
    ArticleBand,
    CrawlRequest,
    Entry,
    Feed,
    FeedPoll,
    Lock,
    Story,
    utcnow,
)

DEDUP_LOCK = "dedup"
MAX_NEAR_DUP_CANDIDATES = 50


def _table(model: type[Any]) -> sa.Table:
    """The Core table behind a SQLModel class (typed for mypy)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


def _insert(session: Session, table: Any) -> Any:
    """A dialect-specific INSERT that supports ``on_conflict_do_nothing``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name!r}")


def take_lock(session: Session, name: str) -> None:
    """Serialise the rest of this transaction against others taking ``name``.

    The first statement is a write, which on SQLite takes the database write
    lock (waiting up to the busy timeout) and on PostgreSQL a row lock held
    until commit.
    """
    session.execute(
        _insert(session, _table(Lock))
        .values(name=name, counter=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    session.execute(
        sa.update(Lock).where(col(Lock.name) == name).values(counter=col(Lock.counter) + 1)
    )


# --- feeds ------------------------------------------------------------------


def upsert_feed(
    session: Session,
    *,
    name: str,
    url: str,
    tags: Sequence[str] = (),
    language: str | None = None,
    poll_interval_seconds: int | None = None,
    enabled: bool = True,
) -> tuple[Feed, bool]:
    """Create or update a feed by name (or URL); returns ``(feed, created)``."""
    feed = session.exec(select(Feed).where(col(Feed.name) == name)).first()
    if feed is None:
        feed = session.exec(select(Feed).where(col(Feed.url) == url)).first()
    created = feed is None
    if feed is None:
        feed = Feed(name=name, url=url, next_poll_at=utcnow())
    feed.name = name
    feed.url = url
    feed.tags = list(tags)
    feed.language = language
    feed.poll_interval_seconds = poll_interval_seconds
    feed.enabled = enabled
    feed.updated_at = utcnow()
    session.add(feed)
    session.flush()
    return feed, created


def get_feed_by_name(session: Session, name: str) -> Feed | None:
    return session.exec(select(Feed).where(col(Feed.name) == name)).first()


def list_feeds(session: Session) -> list[Feed]:
    return list(session.exec(select(Feed).order_by(col(Feed.name))).all())


def due_feed_ids(session: Session, *, now: datetime, limit: int, claim_seconds: float) -> list[int]:
    """Feeds whose next poll time has come, claimed so a second beat tick skips them.

    Claiming pushes ``next_poll_at`` forward by ``claim_seconds``; the poll
    itself sets the real next time. The query walks the ``ix_feeds_due``
    index and is batched by ``limit``, so it stays cheap with 10,000+ feeds.
    """
    query = (
        select(Feed.id)
        .where(col(Feed.enabled).is_(True))
        .where(col(Feed.next_poll_at) <= now)
        .order_by(col(Feed.next_poll_at))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = [int(i) for i in session.exec(query).all() if i is not None]
    if ids:
        session.execute(
            sa.update(Feed)
            .where(col(Feed.id).in_(ids))
            .values(next_poll_at=now + timedelta(seconds=claim_seconds))
        )
    return ids


def acquire_feed_lease(
    session: Session, *, feed_id: int, owner: str, now: datetime, lease_seconds: float
) -> bool:
    """Take the per-feed lease; False when another worker is polling this feed.

    The owner is the task id, so a redelivered copy of the same task (after a
    worker died) may take its own lease again.
    """
    result = session.execute(
        sa.update(Feed)
        .where(col(Feed.id) == feed_id)
        .where(
            sa.or_(
                col(Feed.lease_until).is_(None),
                col(Feed.lease_until) < now,
                col(Feed.lease_owner) == owner,
            )
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
    )
    return bool(getattr(result, "rowcount", 0))


def release_feed_lease(session: Session, *, feed_id: int, owner: str) -> None:
    session.execute(
        sa.update(Feed)
        .where(col(Feed.id) == feed_id)
        .where(col(Feed.lease_owner) == owner)
        .values(lease_owner=None, lease_until=None)
    )


def add_poll(session: Session, poll: FeedPoll) -> None:
    session.add(poll)


# --- entries ------------------------------------------------------------------


def add_entries(
    session: Session,
    *,
    feed_id: int | None,
    items: Iterable[FeedItem],
    crawl_request_id: int | None = None,
) -> list[int]:
    """Insert feed items not seen before; returns the ids of the new entries.

    ``ON CONFLICT DO NOTHING`` on (feed_id, entry_key) makes a repeated poll,
    or two polls racing, insert each item once.
    """
    now = utcnow()
    new_ids: list[int] = []
    for item in items:
        stmt = (
            _insert(session, _table(Entry))
            .values(
                feed_id=feed_id,
                entry_key=item.entry_key,
                guid=item.guid,
                url=item.url,
                title=item.title,
                summary=item.summary,
                author=item.author,
                published_at=item.published_at,
                status="pending",
                attempts=0,
                crawl_request_id=crawl_request_id,
                first_seen_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
            .returning(_table(Entry).c.id)
        )
        inserted = session.execute(stmt).scalar_one_or_none()
        if inserted is not None:
            new_ids.append(int(inserted))
    return new_ids


def stale_pending_entry_ids(session: Session, *, older_than: datetime, limit: int) -> list[int]:
    """Entries left pending (a poll died before enqueueing them); re-enqueued by beat."""
    rows = session.exec(
        select(Entry.id)
        .where(col(Entry.status) == "pending")
        .where(col(Entry.updated_at) < older_than)
        .order_by(col(Entry.updated_at))
        .limit(limit)
    ).all()
    return [int(r) for r in rows if r is not None]


def touch_entries(session: Session, entry_ids: Sequence[int]) -> None:
    if entry_ids:
        session.execute(
            sa.update(Entry).where(col(Entry.id).in_(entry_ids)).values(updated_at=utcnow())
        )


def mark_entry_failed(
    session: Session,
    *,
    entry_id: int,
    error: str,
    error_class: str,
    http_status: int | None = None,
) -> None:
    session.execute(
        sa.update(Entry)
        .where(col(Entry.id) == entry_id)
        .values(
            status="failed",
            error=error[:4000],
            error_class=error_class,
            http_status=http_status,
            attempts=col(Entry.attempts) + 1,
            updated_at=utcnow(),
        )
    )


def mark_entry_stored(
    session: Session, *, entry_id: int, article_id: int, note: str | None = None
) -> None:
    session.execute(
        sa.update(Entry)
        .where(col(Entry.id) == entry_id)
        .values(
            status="stored",
            article_id=article_id,
            error=note,
            error_class=None if note is None else "fallback",
            attempts=col(Entry.attempts) + 1,
            updated_at=utcnow(),
        )
    )


# --- articles and stories ------------------------------------------------------


@dataclass(frozen=True)
class ArticleRecord:
    """Everything the pipeline decided about one article, ready to persist."""

    url: str
    canonical_url: str
    feed_id: int | None
    guid: str | None
    title: str
    body: str
    summary: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    extraction_method: str
    fingerprint: dedup.Fingerprint
    classification: Classification


@dataclass(frozen=True)
class SaveOutcome:
    article_id: int
    story_id: int
    action: str  # created | updated | duplicate | near_duplicate
    duplicate_of_id: int | None = None
    reason: str | None = None


def _domain(url: str) -> str | None:
    host = urlsplit(url).hostname
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


def _apply_classification(article: Article, classification: Classification) -> None:
    article.is_ukraine_security = classification.is_ukraine_security
    article.security_score = round(float(classification.score), 4)
    article.topics = list(classification.topics)
    article.evidence = {k: list(v) for k, v in classification.evidence.items()}
    article.classifier_version = classification.version


def _existing_article(session: Session, record: ArticleRecord) -> Article | None:
    found = session.exec(
        select(Article).where(col(Article.canonical_url) == record.canonical_url)
    ).first()
    if found is None and record.guid and record.feed_id is not None:
        found = session.exec(
            select(Article)
            .where(col(Article.feed_id) == record.feed_id)
            .where(col(Article.guid) == record.guid)
        ).first()
    return found


def _stored_fingerprint(article: Article) -> dedup.Fingerprint:
    signature = dedup.decode_signature(article.minhash) if article.minhash else ()
    return dedup.Fingerprint(
        content_hash=article.content_hash,
        signature=signature,
        title=article.title,
        published_at=article.published_at,
    )


def _find_story_match(
    session: Session, record: ArticleRecord, *, window: timedelta
) -> tuple[Article, dedup.Match] | None:
    """Exact (same body hash) first, then near-duplicates via the LSH band index."""
    fp = record.fingerprint
    if fp.content_hash:
        exact = session.exec(
            select(Article)
            .where(col(Article.content_hash) == fp.content_hash)
            .order_by(col(Article.id))
        ).first()
        if exact is not None:
            return exact, dedup.match(fp, _stored_fingerprint(exact), window=window)
    keys = dedup.lsh_band_keys(fp.signature) if fp.signature else []
    if not keys:
        return None
    candidate_ids = session.exec(
        select(ArticleBand.article_id)
        .where(col(ArticleBand.band_key).in_(keys))
        .group_by(col(ArticleBand.article_id))
        .order_by(sa.func.count().desc(), col(ArticleBand.article_id))
        .limit(MAX_NEAR_DUP_CANDIDATES)
    ).all()
    if not candidate_ids:
        return None
    candidates = session.exec(select(Article).where(col(Article.id).in_(candidate_ids))).all()
    best: tuple[Article, dedup.Match] | None = None
    for candidate in candidates:
        verdict = dedup.match(fp, _stored_fingerprint(candidate), window=window)
        if not verdict.same_story:
            continue
        if best is None or verdict.body_similarity > best[1].body_similarity:
            best = (candidate, verdict)
    return best


def refresh_story(session: Session, story_id: int) -> None:
    """Recompute a story's counters and label from its articles."""
    story = session.get(Story, story_id)
    if story is None:
        return
    articles = session.exec(
        select(Article).where(col(Article.story_id) == story_id).order_by(col(Article.id))
    ).all()
    if not articles:
        return
    first = articles[0]
    story.first_article_id = first.id
    story.article_count = len(articles)
    story.source_count = len({a.source_domain or a.canonical_url for a in articles})
    story.first_seen_at = min(a.created_at for a in articles)
    story.last_seen_at = max(a.created_at for a in articles)
    story.is_ukraine_security = any(a.is_ukraine_security for a in articles)
    story.security_score = max(a.security_score for a in articles)
    topics: list[str] = []
    for article in articles:
        topics.extend(t for t in article.topics if t not in topics)
    story.topics = topics
    story.updated_at = utcnow()
    session.add(story)


def save_article(
    session: Session, record: ArticleRecord, *, window: timedelta = timedelta(days=3)
) -> SaveOutcome:
    """Insert or update one article and place it in a story.

    Runs under the dedup lock: the lookups (same URL, same GUID, same body,
    similar body) and the insert happen as one serialised step, which is what
    keeps racing workers from creating two stories for one event.
    """
    take_lock(session, DEDUP_LOCK)
    now = utcnow()
    fp = record.fingerprint
    existing = _existing_article(session, record)
    if existing is not None:
        if record.title and record.title != existing.title:
            existing.title_history = [
                *existing.title_history,
                {"title": existing.title, "replaced_at": now.isoformat()},
            ]
            existing.title = record.title
        if record.body and len(record.body) >= len(existing.body) // 2:
            existing.body = record.body
            existing.content_hash = fp.content_hash
            existing.minhash = dedup.encode_signature(fp.signature) if fp.signature else None
            existing.extraction_method = record.extraction_method
        existing.summary = record.summary or existing.summary
        existing.author = record.author or existing.author
        existing.published_at = existing.published_at or record.published_at
        existing.language = record.language or existing.language
        existing.fetched_at = now
        existing.updated_at = now
        _apply_classification(existing, record.classification)
        session.add(existing)
        session.flush()
        assert existing.id is not None
        _replace_bands(session, existing.id, fp)
        if existing.story_id is not None:
            refresh_story(session, existing.story_id)
        return SaveOutcome(
            article_id=existing.id, story_id=existing.story_id or 0, action="updated"
        )

    found = _find_story_match(session, record, window=window)
    article = Article(
        url=record.url,
        canonical_url=record.canonical_url,
        feed_id=record.feed_id,
        guid=record.guid,
        source_domain=_domain(record.canonical_url),
        title=record.title,
        body=record.body,
        summary=record.summary,
        author=record.author,
        published_at=record.published_at,
        fetched_at=now,
        language=record.language,
        extraction_method=record.extraction_method,
        content_hash=fp.content_hash,
        minhash=dedup.encode_signature(fp.signature) if fp.signature else None,
        classifier_version=record.classification.version,
        created_at=now,
        updated_at=now,
    )
    _apply_classification(article, record.classification)
    action = "created"
    duplicate_of: int | None = None
    reason: str | None = None
    if found is not None:
        match_article, verdict = found
        article.story_id = match_article.story_id
        reason = verdict.reason
        article.dedup_reason = reason
        if verdict.exact:
            action = "duplicate"
            duplicate_of = match_article.duplicate_of_id or match_article.id
            article.duplicate_of_id = duplicate_of
        else:
            action = "near_duplicate"
    if article.story_id is None:
        story = Story(title=record.title, first_seen_at=now, last_seen_at=now)
        session.add(story)
        session.flush()
        article.story_id = story.id
    session.add(article)
    session.flush()
    assert article.id is not None and article.story_id is not None
    _replace_bands(session, article.id, fp)
    refresh_story(session, article.story_id)
    return SaveOutcome(
        article_id=article.id,
        story_id=article.story_id,
        action=action,
        duplicate_of_id=duplicate_of,
        reason=reason,
    )


def _replace_bands(session: Session, article_id: int, fp: dedup.Fingerprint) -> None:
    session.execute(sa.delete(ArticleBand).where(col(ArticleBand.article_id) == article_id))
    keys = sorted(set(dedup.lsh_band_keys(fp.signature))) if fp.signature else []
    if keys:
        session.execute(
            _insert(session, _table(ArticleBand))
            .values([{"band_key": k, "article_id": article_id} for k in keys])
            .on_conflict_do_nothing()
        )


def update_classification(
    session: Session, *, article_id: int, classification: Classification
) -> bool:
    """Re-label one article (reclassify); returns True when anything changed."""
    article = session.get(Article, article_id)
    if article is None:
        return False
    before = (article.is_ukraine_security, article.security_score, article.classifier_version)
    _apply_classification(article, classification)
    article.updated_at = utcnow()
    session.add(article)
    if article.story_id is not None:
        session.flush()
        refresh_story(session, article.story_id)
    after = (article.is_ukraine_security, article.security_score, article.classifier_version)
    return before != after


def article_ids_since(
    session: Session, *, since: datetime | None, only_outdated_version: str | None = None
) -> list[int]:
    query = select(Article.id).order_by(col(Article.id))
    if since is not None:
        query = query.where(col(Article.fetched_at) >= since)
    if only_outdated_version is not None:
        query = query.where(col(Article.classifier_version) != only_outdated_version)
    return [int(i) for i in session.exec(query).all() if i is not None]


def create_crawl_request(
    session: Session, *, requested_by: str, kind: str, target: str, force: bool
) -> CrawlRequest:
    request = CrawlRequest(requested_by=requested_by, kind=kind, target=target, force=force)
    session.add(request)
    session.flush()
    return request


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
