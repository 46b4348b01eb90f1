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
from .errors import ERROR_TEXT_MAX_CHARS
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

    One upsert as the first statement: a write, which on SQLite takes the
    database write lock (waiting up to the busy timeout) and on PostgreSQL a
    row lock held until commit. It runs once per stored article, so the
    statement is built once per dialect and reused (no per-call construction
    or cache-key work).
    """
    dialect = session.get_bind().dialect.name
    statement = _LOCK_STATEMENTS.get(dialect)
    if statement is None:
        insert = _insert(session, _table(Lock))
        statement = _LOCK_STATEMENTS[dialect] = insert.values(
            name=sa.bindparam("lock_name"), counter=1
        ).on_conflict_do_update(
            index_elements=["name"],
            set_={"counter": insert.excluded.counter + _table(Lock).c.counter},
        )
    session.execute(statement, {"lock_name": name})


_LOCK_STATEMENTS: dict[str, Any] = {}


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
    rows = [
        {
            "feed_id": feed_id,
            "entry_key": item.entry_key,
            "guid": item.guid,
            "url": item.url,
            "title": item.title,
            "summary": item.summary,
            "author": item.author,
            "published_at": item.published_at,
            "status": "pending",
            "attempts": 0,
            "crawl_request_id": crawl_request_id,
            "first_seen_at": now,
            "updated_at": now,
        }
        for item in items
    ]
    if not rows:
        return []
    # One statement for the whole poll (SQLAlchemy's "insertmanyvalues": a few
    # multi-row INSERT ... RETURNING round trips); building and compiling an
    # INSERT per item cost ~1.5 ms an entry on the poll path (bench/run.py).
    stmt = (
        _insert(session, _table(Entry))
        .on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
        .returning(_table(Entry).c.id)
    )
    return sorted(int(entry_id) for entry_id in session.execute(stmt, rows).scalars())


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


def begin_entry_attempt(session: Session, *, entry_id: int, at_least: int = 1) -> int | None:
    """Count one started attempt at an entry; returns the new count.

    Counted when work starts, not when it ends, so a run that never ends (a
    worker killed by a page, then the message redelivered) still counts and a
    caller can cap the attempts instead of looping forever. Returns None for an
    entry that is missing or already stored.

    A first delivery skips this write and counts itself in
    :func:`mark_entry_stored` / :func:`mark_entry_failed` (``worker.tasks``), so
    a first run that died was never counted: a redelivery or retry passes
    ``at_least=2`` to count it too.
    """
    counted = col(Entry.attempts) + 1
    result = session.execute(
        sa.update(Entry)
        .where(col(Entry.id) == entry_id)
        .where(col(Entry.status) != "stored")
        .values(
            attempts=sa.case((counted < at_least, at_least), else_=counted),
            updated_at=utcnow(),
        )
        .returning(col(Entry.attempts))
    )
    attempts = result.scalar_one_or_none()
    return None if attempts is None else int(attempts)


def mark_entry_failed(
    session: Session,
    *,
    entry_id: int,
    error: str,
    error_class: str,
    http_status: int | None = None,
    count_attempt: bool = False,
) -> None:
    """Record the entry as failed; ``count_attempt`` counts an attempt not counted at start."""
    session.execute(
        sa.update(Entry)
        .where(col(Entry.id) == entry_id)
        .values(
            status="failed",
            error=error[:ERROR_TEXT_MAX_CHARS],
            error_class=error_class,
            http_status=http_status,
            attempts=col(Entry.attempts) + int(count_attempt),
            updated_at=utcnow(),
        )
    )


def entry_to_process(session: Session, entry_id: int) -> Any:
    """The entry's columns that processing reads, as a row (no ORM object), or None."""
    return session.execute(_ENTRY_TO_PROCESS, {"entry": entry_id}).first()


_ENTRY_TO_PROCESS = sa.select(
    *(
        getattr(Entry, name)
        for name in (
            "id",
            "status",
            "article_id",
            "url",
            "title",
            "summary",
            "published_at",
            "author",
            "feed_id",
            "guid",
        )
    )
).where(col(Entry.id) == sa.bindparam("entry"))


def mark_entry_stored(
    session: Session,
    *,
    entry_id: int,
    article_id: int,
    note: str | None = None,
    note_class: str = "fallback",
    count_attempt: bool = False,
) -> None:
    """Record the entry as stored; ``count_attempt`` counts an attempt not counted at start.

    ``note`` says how it was stored when that was not the normal way (the
    feed summary used, or a known URL linked without a fetch), classed by
    ``note_class`` in ``error_class`` so operators can filter on it.
    """
    session.execute(
        _MARK_STORED,
        {
            "entry": entry_id,
            "article_id": article_id,
            "error": note,
            "error_class": None if note is None else note_class,
            "counted": int(count_attempt),
            "updated_at": utcnow(),
        },
    )


# Runs once per entry: built once, with bound parameters.
_MARK_STORED = (
    sa.update(Entry)
    .where(col(Entry.id) == sa.bindparam("entry"))
    .values(
        status="stored",
        article_id=sa.bindparam("article_id"),
        error=sa.bindparam("error"),
        error_class=sa.bindparam("error_class"),
        attempts=col(Entry.attempts) + sa.bindparam("counted"),
        updated_at=sa.bindparam("updated_at"),
    )
)


# --- articles and stories ------------------------------------------------------


def recently_fetched_article(
    session: Session, *, canonical_url: str, since: datetime
) -> tuple[int, bool] | None:
    """``(id, is_ukraine_security)`` of the article at ``canonical_url`` if fetched since ``since``.

    Lets an entry that links to a page we stored moments ago (the same story in
    a second feed) be linked to it without fetching and extracting it again.
    """
    row = session.execute(
        _RECENTLY_FETCHED, {"canonical_url": canonical_url, "since": since}
    ).first()
    return None if row is None else (int(row[0]), bool(row[1]))


_RECENTLY_FETCHED = (
    sa.select(col(Article.id), col(Article.is_ukraine_security))
    .where(col(Article.canonical_url) == sa.bindparam("canonical_url"))
    .where(col(Article.fetched_at) >= sa.bindparam("since"))
)


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


def _classification_values(classification: Classification) -> dict[str, Any]:
    return {
        "is_ukraine_security": classification.is_ukraine_security,
        "security_score": round(float(classification.score), 4),
        "topics": list(classification.topics),
        "evidence": {k: list(v) for k, v in classification.evidence.items()},
        "classifier_version": classification.version,
    }


def _apply_classification(article: Article, classification: Classification) -> None:
    for name, value in _classification_values(classification).items():
        setattr(article, name, value)


# Statements run for every stored article, built once with bound parameters:
# building a select and its cache key per call cost more than running it.
_ARTICLE_BY_URL = sa.select(col(Article.id)).where(
    col(Article.canonical_url) == sa.bindparam("canonical_url")
)
_ARTICLE_BY_GUID = (
    sa.select(col(Article.id))
    .where(col(Article.feed_id) == sa.bindparam("feed_id"))
    .where(col(Article.guid) == sa.bindparam("guid"))
)
_SAME_SOURCE_IN_STORY = (
    sa.select(sa.literal(1))
    .where(col(Article.story_id) == sa.bindparam("story_id"))
    .where(col(Article.id) != sa.bindparam("article_id"))
    .where(sa.func.coalesce(Article.source_domain, Article.canonical_url) == sa.bindparam("source"))
    .limit(1)
)


def _existing_article(session: Session, record: ArticleRecord) -> Article | None:
    found = session.execute(_ARTICLE_BY_URL, {"canonical_url": record.canonical_url}).scalar()
    if found is None and record.guid and record.feed_id is not None:
        found = session.execute(
            _ARTICLE_BY_GUID, {"feed_id": record.feed_id, "guid": record.guid}
        ).scalar()
    return None if found is None else session.get(Article, found)


def _stored_fingerprint(article: Any) -> dedup.Fingerprint:
    signature = dedup.decode_signature(article.minhash) if article.minhash else ()
    return dedup.Fingerprint(
        content_hash=article.content_hash,
        signature=signature,
        title=article.title,
        published_at=article.published_at,
    )


# Only what matching and joining a story read from a candidate, not its body:
# a wire story has tens of copies, each a candidate of the next, and loading
# their bodies and evidence would cost far more than comparing signatures.
# Plain rows, not ORM objects: nothing here is modified.
_MATCH_COLUMNS = (
    "id",
    "story_id",
    "duplicate_of_id",
    "content_hash",
    "minhash",
    "title",
    "published_at",
)
_MATCH_SELECT = sa.select(*(getattr(Article, name) for name in _MATCH_COLUMNS))
_EXACT_MATCH = (
    _MATCH_SELECT.where(col(Article.content_hash) == sa.bindparam("content_hash"))
    .order_by(col(Article.id))
    .limit(1)
)
# Most shared keys first, then the most recent: the cap keeps a lookup's cost
# bounded however many stored articles share a popular key.
_CANDIDATE_IDS = (
    sa.select(col(ArticleBand.article_id))
    .where(col(ArticleBand.band_key).in_(sa.bindparam("keys", expanding=True)))
    .group_by(col(ArticleBand.article_id))
    .order_by(sa.func.count().desc(), col(ArticleBand.article_id).desc())
    .limit(MAX_NEAR_DUP_CANDIDATES)
)
_CANDIDATES = _MATCH_SELECT.where(col(Article.id).in_(sa.bindparam("ids", expanding=True)))


def _find_story_match(
    session: Session, record: ArticleRecord, *, window: timedelta
) -> tuple[Any, dedup.Match] | None:
    """Exact (same body hash) first, then near-duplicates via the LSH band index.

    Returns the matching article as a row of ``_MATCH_COLUMNS`` and the verdict.
    """
    fp = record.fingerprint
    if fp.content_hash:
        exact = session.execute(_EXACT_MATCH, {"content_hash": fp.content_hash}).first()
        if exact is not None:
            return exact, dedup.match(fp, _stored_fingerprint(exact), window=window)
    keys = sorted(set(dedup.query_keys(fp, window=window)))
    if not keys:
        return None
    candidate_ids = session.execute(_CANDIDATE_IDS, {"keys": keys}).scalars().all()
    if not candidate_ids:
        return None
    best: tuple[Any, dedup.Match] | None = None
    for candidate in session.execute(_CANDIDATES, {"ids": list(candidate_ids)}):
        verdict = dedup.match(fp, _stored_fingerprint(candidate), window=window)
        if not verdict.same_story:
            continue
        if best is None or verdict.body_similarity > best[1].body_similarity:
            best = (candidate, verdict)
    return best


def refresh_story(session: Session, story_id: int) -> None:
    """Recompute a story's counters and label from its articles.

    Aggregates run in SQL over the ``story_id`` index; only the small topics
    lists are read back, so the cost stays low for stories with many copies.
    """
    story = session.get(Story, story_id)
    if story is None:
        return
    in_story = col(Article.story_id) == story_id
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(
                sa.distinct(sa.func.coalesce(Article.source_domain, Article.canonical_url))
            ),
            sa.func.min(Article.created_at),
            sa.func.max(Article.created_at),
            sa.func.max(Article.security_score),
            sa.func.max(sa.cast(Article.is_ukraine_security, sa.Integer)),
            sa.func.min(Article.id),
        ).where(in_story)
    ).one()
    count, sources, first_seen, last_seen, best_score, any_positive, first_id = row
    if not count:
        return
    topics: list[str] = []
    for article_topics in session.execute(
        sa.select(col(Article.topics)).where(in_story).order_by(col(Article.id))
    ).scalars():
        topics.extend(t for t in article_topics or [] if t not in topics)
    story.first_article_id = int(first_id)
    story.article_count = int(count)
    story.source_count = int(sources)
    story.first_seen_at = first_seen
    story.last_seen_at = last_seen
    story.is_ukraine_security = bool(any_positive)
    story.security_score = float(best_score or 0.0)
    story.topics = topics
    story.updated_at = utcnow()
    session.add(story)


@dataclass(frozen=True)
class _NewArticle:
    """What joining a story needs of an article just inserted (no ORM object is made)."""

    id: int
    source: str
    created_at: datetime
    is_ukraine_security: bool
    security_score: float
    topics: list[str]


def _join_story(session: Session, story: Story, article: _NewArticle) -> None:
    """Add a newly inserted article to its story's counters: O(1) in the story's size.

    Equivalent to :func:`refresh_story` for an insert (the new article has the
    highest id and the latest ``created_at``), without reading every copy's
    topics back: a wire story syndicated by fifty outlets costs the fiftieth
    copy the same as the second, and a new story (created empty) costs no
    query at all. Runs under the dedup lock, like the insert.
    """
    source_seen = (
        story.article_count > 0
        and session.execute(
            _SAME_SOURCE_IN_STORY,
            {"story_id": story.id, "article_id": article.id, "source": article.source},
        ).first()
    )
    if story.first_article_id is None:
        story.first_article_id = article.id
    story.article_count += 1
    story.source_count += 0 if source_seen else 1
    if as_utc(article.created_at) > as_utc(story.last_seen_at):
        story.last_seen_at = article.created_at
    story.is_ukraine_security = bool(story.is_ukraine_security or article.is_ukraine_security)
    story.security_score = max(float(story.security_score or 0.0), article.security_score)
    topics = list(story.topics or [])
    story.topics = topics + [t for t in article.topics if t not in topics]
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
        _replace_bands(session, existing.id, fp, duplicate=existing.duplicate_of_id is not None)
        if existing.story_id is not None:
            refresh_story(session, existing.story_id)
        return SaveOutcome(
            article_id=existing.id, story_id=existing.story_id or 0, action="updated"
        )

    found = _find_story_match(session, record, window=window)
    source_domain = _domain(record.canonical_url)
    values: dict[str, Any] = {
        "url": record.url,
        "canonical_url": record.canonical_url,
        "feed_id": record.feed_id,
        "guid": record.guid,
        "source_domain": source_domain,
        "title": record.title,
        "title_history": [],
        "body": record.body,
        "summary": record.summary,
        "author": record.author,
        "published_at": record.published_at,
        "fetched_at": now,
        "language": record.language,
        "extraction_method": record.extraction_method,
        "content_hash": fp.content_hash,
        "minhash": dedup.encode_signature(fp.signature) if fp.signature else None,
        "story_id": None,
        "duplicate_of_id": None,
        "dedup_reason": None,
        **_classification_values(record.classification),
        "created_at": now,
        "updated_at": now,
    }
    action = "created"
    duplicate_of: int | None = None
    reason: str | None = None
    if found is not None:
        match_article, verdict = found
        values["story_id"] = match_article.story_id
        reason = values["dedup_reason"] = verdict.reason
        if verdict.exact:
            action = "duplicate"
            duplicate_of = match_article.duplicate_of_id or match_article.id
            values["duplicate_of_id"] = duplicate_of
        else:
            action = "near_duplicate"
    story = session.get(Story, values["story_id"]) if values["story_id"] is not None else None
    if story is None:
        # Created empty: _join_story below counts the first article like any other.
        story = Story(
            title=record.title,
            first_seen_at=now,
            last_seen_at=now,
            article_count=0,
            source_count=0,
        )
        session.add(story)
        session.flush()
        values["story_id"] = story.id
    # A Core insert: an ORM object would cost its construction and a flush,
    # and nothing in this transaction reads the article back through the ORM.
    article_id = int(session.execute(_INSERT_ARTICLE, values).scalar_one())
    _replace_bands(session, article_id, fp, duplicate=duplicate_of is not None)
    _join_story(
        session,
        story,
        _NewArticle(
            id=article_id,
            source=source_domain or record.canonical_url,
            created_at=now,
            is_ukraine_security=values["is_ukraine_security"],
            security_score=values["security_score"],
            topics=values["topics"],
        ),
    )
    return SaveOutcome(
        article_id=article_id,
        story_id=int(values["story_id"]),
        action=action,
        duplicate_of_id=duplicate_of,
        reason=reason,
    )


_INSERT_ARTICLE = sa.insert(Article).returning(col(Article.id))


def _replace_bands(
    session: Session, article_id: int, fp: dedup.Fingerprint, *, duplicate: bool = False
) -> None:
    """Index ``fp`` under the article's band keys, replacing what it had.

    An exact duplicate is not indexed: its original (``duplicate_of_id``) is,
    and anything that matches the copy matches the original as well. So the
    fiftieth copy of a wire story meets one candidate per story, not
    forty-nine copies, and the band table grows with stories, not copies.
    """
    session.execute(sa.delete(ArticleBand).where(col(ArticleBand.article_id) == article_id))
    if duplicate:
        return
    keys = sorted(set(dedup.index_keys(fp)))
    if keys:
        # executemany with one statement: compiled once and cached, unlike a
        # multi-row VALUES whose SQL changes with the number of keys.
        session.execute(
            _insert(session, _table(ArticleBand)).on_conflict_do_nothing(),
            [{"band_key": k, "article_id": article_id} for k in keys],
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


# --- operator queries (issue 6) ------------------------------------------------
# Read queries and small admin writes for the CLI and the read API. Listing uses
# keyset pagination (WHERE key < last key) rather than OFFSET, so a page does not
# shift when new articles arrive while a client is paging.

LABEL_POSITIVE = "ukraine-security"
LABEL_NEGATIVE = "other"


def disable_feed(session: Session, name: str) -> Feed | None:
    """Stop polling a feed (operator's choice); its articles and history stay."""
    feed = get_feed_by_name(session, name)
    if feed is None:
        return None
    feed.enabled = False
    feed.state = "disabled"
    feed.updated_at = utcnow()
    session.add(feed)
    session.flush()
    return feed


def remove_feed(session: Session, name: str) -> bool:
    """Delete a feed, its polls and its entries; stored articles stay (feed_id NULL)."""
    feed = get_feed_by_name(session, name)
    if feed is None:
        return False
    # Explicit deletes rather than relying on ON DELETE, which SQLite honours
    # only when the connection enabled foreign keys.
    session.execute(sa.delete(FeedPoll).where(col(FeedPoll.feed_id) == feed.id))
    session.execute(sa.delete(Entry).where(col(Entry.feed_id) == feed.id))
    session.execute(sa.update(Article).where(col(Article.feed_id) == feed.id).values(feed_id=None))
    session.execute(sa.delete(Feed).where(col(Feed.id) == feed.id))
    return True


def check_database(session: Session) -> None:
    """Raise if the database does not answer a trivial query (health checks)."""
    session.execute(sa.text("SELECT 1")).scalar_one()


def json_array_contains(session: Session, column: Any, value: str) -> Any:
    """``value in column`` for a JSON array column, on SQLite and PostgreSQL.

    PostgreSQL uses JSONB containment (``@>``), which a GIN index can serve;
    SQLite has no such operator, so it scans the array with ``json_each``.
    """
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(column, postgresql.JSONB).op("@>")(
            sa.cast(sa.literal(f"[{_json_string(value)}]"), postgresql.JSONB)
        )
    items = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(1).select_from(items).where(items.c.value == value))


def _json_string(value: str) -> str:
    import json

    return json.dumps(value)


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


def article_sort_key() -> Any:
    """Publication time, or when we stored it for articles without a date."""
    from .models import UTCDateTime

    return sa.func.coalesce(col(Article.published_at), col(Article.created_at), type_=UTCDateTime())


def list_articles(
    session: Session,
    *,
    where: ArticleFilter,
    limit: int,
    sort: str = "published",
    after: tuple[datetime | None, int] | None = None,
) -> list[tuple[Article, datetime]]:
    """One page of articles, newest first, with each row's sort time.

    ``sort="published"`` orders by :func:`article_sort_key` then id;
    ``sort="id"`` by id alone (the order articles were stored). ``after`` is
    the (sort time, id) of the last row of the previous page.
    """
    key = article_sort_key()
    query = select(Article, key)
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
        query = query.join(Feed, col(Feed.id) == col(Article.feed_id)).where(
            col(Feed.name) == where.feed
        )
    if sort == "id":
        if after is not None:
            query = query.where(col(Article.id) < after[1])
        query = query.order_by(col(Article.id).desc())
    else:
        if after is not None and after[0] is not None:
            query = query.where(
                sa.or_(key < after[0], sa.and_(key == after[0], col(Article.id) < after[1]))
            )
        query = query.order_by(key.desc(), col(Article.id).desc())
    rows = session.execute(query.limit(limit)).all()
    return [(row[0], row[1]) for row in rows]


def list_stories(
    session: Session,
    *,
    label: str | None = None,
    topic: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    min_articles: int = 1,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Story]:
    """One page of stories, newest first by id (ids grow as stories are first seen)."""
    query = select(Story)
    if label is not None:
        query = query.where(col(Story.is_ukraine_security).is_(label == LABEL_POSITIVE))
    if topic is not None:
        query = query.where(json_array_contains(session, Story.topics, topic))
    if since is not None:
        query = query.where(col(Story.last_seen_at) >= since)
    if until is not None:
        query = query.where(col(Story.first_seen_at) < until)
    if min_articles > 1:
        query = query.where(col(Story.article_count) >= min_articles)
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
    }


# Reclassification progress: counted with queries, not id lists, so following
# a run over 100k articles costs one COUNT per tick.


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


# Crawl requests: the request row says who asked for what; its entries (linked
# by entries.crawl_request_id) say how far it got.


def add_url_entry(session: Session, *, url: str, crawl_request_id: int) -> int:
    """A ledger entry for one URL an operator asked to crawl (no feed)."""
    import hashlib

    key = f"url:{crawl_request_id}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"
    now = utcnow()
    entry = Entry(
        feed_id=None,
        entry_key=key,
        url=url,
        status="pending",
        crawl_request_id=crawl_request_id,
        first_seen_at=now,
        updated_at=now,
    )
    session.add(entry)
    session.flush()
    assert entry.id is not None
    return entry.id


def recent_feed_entry_ids(session: Session, *, feed_id: int, limit: int) -> list[int]:
    """The feed's newest entries: the items its current document most likely lists."""
    rows = session.exec(
        select(Entry.id)
        .where(col(Entry.feed_id) == feed_id)
        .order_by(col(Entry.published_at).desc().nulls_last(), col(Entry.id).desc())
        .limit(limit)
    ).all()
    return [int(r) for r in rows if r is not None]


def entry_ids_since(session: Session, *, since: datetime, include_stored: bool) -> list[int]:
    query = select(Entry.id).where(col(Entry.first_seen_at) >= since).order_by(col(Entry.id))
    if not include_stored:
        query = query.where(col(Entry.status) != "stored")
    return [int(r) for r in session.exec(query).all() if r is not None]


def entry_ids_for_request(session: Session, request_id: int) -> list[int]:
    rows = session.exec(
        select(Entry.id).where(col(Entry.crawl_request_id) == request_id).order_by(col(Entry.id))
    ).all()
    return [int(r) for r in rows if r is not None]


def start_crawl_request(session: Session, *, request_id: int, entry_ids: Sequence[int]) -> None:
    """Link entries to the request, mark them to be processed again, and start it."""
    now = utcnow()
    ids = sorted(set(entry_ids))
    for start in range(0, len(ids), 500):
        session.execute(
            sa.update(Entry)
            .where(col(Entry.id).in_(ids[start : start + 500]))
            # attempts restart: an operator's re-crawl is a fresh try, not a crash loop.
            .values(crawl_request_id=request_id, status="pending", attempts=0, updated_at=now)
        )
    session.execute(
        sa.update(CrawlRequest)
        .where(col(CrawlRequest.id) == request_id)
        .values(status="running" if ids else "done", total=len(ids),
                finished_at=None if ids else now)
    )  # fmt: skip


def fail_crawl_request(session: Session, *, request_id: int, reason: str) -> None:
    """Mark a request failed *with its reason*: an operator polling
    ``GET /crawl-requests/N`` or ``ingest crawl-requests N`` must see why, not only that."""
    session.execute(
        sa.update(CrawlRequest)
        .where(col(CrawlRequest.id) == request_id)
        .values(status="failed", finished_at=utcnow(), error=reason[:ERROR_TEXT_MAX_CHARS])
    )
    import structlog

    structlog.get_logger(__name__).warning(
        "crawl_request_failed", crawl_request_id=request_id, reason=reason
    )


def crawl_request_progress(session: Session, request_id: int) -> CrawlRequest | None:
    """Recount a request's entries by status, store the counts, and return the row.

    The request is ``done`` once none of its entries is pending; counting on
    read (by the CLI, the API) keeps the hot task path free of bookkeeping.
    """
    request = session.get(CrawlRequest, request_id)
    if request is None:
        return None
    if request.status not in ("running", "queued"):
        return request
    counts = {
        str(s): int(c)
        for s, c in session.execute(
            sa.select(col(Entry.status), sa.func.count())
            .where(col(Entry.crawl_request_id) == request_id)
            .group_by(col(Entry.status))
        ).all()
    }
    request.done = counts.get("stored", 0)
    request.failed = counts.get("failed", 0)
    if request.status == "running":
        request.total = max(request.total, sum(counts.values()))
        if counts.get("pending", 0) == 0:
            request.status = "done"
            request.finished_at = utcnow()
    session.add(request)
    session.flush()
    return request


def list_crawl_requests(session: Session, *, limit: int = 20) -> list[CrawlRequest]:
    return list(
        session.exec(select(CrawlRequest).order_by(col(CrawlRequest.id).desc()).limit(limit)).all()
    )


# --- feed health (issue 3) -----------------------------------------------------


@dataclass(frozen=True)
class FetchHistory:
    """What the conditional-GET guard needs to know about a feed's recent polls."""

    last_full_fetch_at: datetime | None  # last poll that got a 200 body
    not_modified_since: int  # 304 answers since then


def fetch_history(session: Session, *, feed_id: int) -> FetchHistory:
    """Two small queries on ``ix_feed_polls_feed_started`` (feed_id, started_at)."""
    last_full = session.exec(
        select(FeedPoll.started_at)
        .where(col(FeedPoll.feed_id) == feed_id)
        .where(col(FeedPoll.status) == "ok")
        .order_by(col(FeedPoll.started_at).desc())
        .limit(1)
    ).first()
    query = (
        select(sa.func.count())
        .select_from(FeedPoll)
        .where(col(FeedPoll.feed_id) == feed_id)
        .where(col(FeedPoll.status) == "not_modified")
    )
    if last_full is not None:
        query = query.where(col(FeedPoll.started_at) > last_full)
    count = session.exec(query).one()
    return FetchHistory(last_full_fetch_at=last_full, not_modified_since=int(count or 0))


def feed_url_taken(session: Session, *, url: str, feed_id: int) -> bool:
    """True when another feed already has ``url`` (a redirect must not collide with it)."""
    other = session.exec(
        select(Feed.id).where(col(Feed.url) == url).where(col(Feed.id) != feed_id)
    ).first()
    return other is not None


def enable_feed(session: Session, name: str) -> Feed | None:
    """Re-enable a feed by name and give it a clean slate; None when there is no such feed.

    Resets health (state healthy, no errors), polls it at the next beat tick,
    and turns conditional GET back on (the operator may have fixed the server).
    """
    feed = get_feed_by_name(session, name)
    if feed is None:
        return None
    now = utcnow()
    feed.enabled = True
    feed.state = "healthy"
    feed.error_count = 0
    feed.first_failure_at = None
    feed.last_error = None
    feed.last_error_class = None
    feed.next_poll_at = now
    feed.conditional_get = True
    feed.lease_owner = None
    feed.lease_until = None
    feed.updated_at = now
    session.add(feed)
    session.flush()
    return feed


def feed_health_counts(session: Session) -> dict[str, int]:
    """Number of feeds per state (healthy, failing, disabled) for operators and metrics."""
    rows = session.execute(
        sa.select(col(Feed.state), sa.func.count()).group_by(col(Feed.state))
    ).all()
    return {str(state): int(count) for state, count in rows}
