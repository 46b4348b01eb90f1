"""SQLModel tables: the public schema that downstream apps read.

Every column here is part of a documented contract (docs/schema.md). Change a
column only together with an Alembic migration and the docs; the test
``tests/integration/test_schema_contract.py`` fails when the migrated schema
and these models disagree.

Each table whose rows readers see through the API or ``ingest --json`` has a
``...Base`` class holding the columns they see; the table class adds the rest, and
the public shape in :mod:`worker.schemas` derives from the same base, so a column
and the field that shows it are typed once (the FastAPI full-stack template's
Base / table / Public family).

Conventions: all timestamps are timezone-aware UTC; JSON columns are JSONB on
PostgreSQL so downstream apps can index and query them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A DateTime that always comes back timezone-aware in UTC.

    SQLite has no time zones, so naive values read back are taken as UTC;
    aware values are converted to UTC before they are written.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class FeedBase(SQLModel):
    """The feed columns an operator sees (``FeedOut`` in :mod:`worker.schemas`): its
    identity and its health. The table adds the scheduler's and poller's state."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True, nullable=False)
    url: str = Field(max_length=2048, unique=True, nullable=False)
    title: str | None = Field(default=None, max_length=1000)
    language: str | None = Field(default=None, max_length=16)
    tags: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    enabled: bool = Field(default=True, nullable=False)
    state: str = Field(default="healthy", max_length=16, nullable=False, index=True)
    error_count: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None)
    last_http_status: int | None = Field(default=None)
    last_polled_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    next_poll_at: datetime | None = _ts()


class Feed(FeedBase, table=True):
    """A feed we poll, with its politeness state and health."""

    __tablename__ = "feeds"
    __table_args__ = (sa.Index("ix_feeds_due", "enabled", "next_poll_at"),)

    site_url: str | None = Field(default=None, max_length=2048)
    poll_interval_seconds: int | None = Field(default=None)

    # Conditional GET and change detection.
    etag: str | None = Field(default=None, max_length=1024)
    last_modified: str | None = Field(default=None, max_length=128)
    last_body_hash: str | None = Field(default=None, max_length=64)
    conditional_get: bool = Field(default=True, nullable=False)

    # Scheduling and health, beyond what FeedBase shows.
    first_failure_at: datetime | None = _ts()
    last_error_class: str | None = Field(default=None, max_length=64)
    ttl_seconds: int | None = Field(default=None)
    publish_interval_seconds: float | None = Field(default=None)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _ts()

    created_at: datetime = _created()
    updated_at: datetime = _created()


class FeedPoll(SQLModel, table=True):
    """One row per poll attempt: what happened and how long it took."""

    __tablename__ = "feed_polls"
    __table_args__ = (sa.Index("ix_feed_polls_feed_started", "feed_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", nullable=False, ondelete="CASCADE")
    started_at: datetime = _created()
    finished_at: datetime | None = _ts()
    duration_ms: int | None = Field(default=None)
    status: str = Field(max_length=16, nullable=False)  # ok | not_modified | error
    http_status: int | None = Field(default=None)
    entries_seen: int = Field(default=0, nullable=False)
    entries_new: int = Field(default=0, nullable=False)
    bozo: bool = Field(default=False, nullable=False)
    bozo_message: str | None = Field(default=None)
    error: str | None = Field(default=None)
    error_class: str | None = Field(default=None, max_length=64)
    final_url: str | None = Field(default=None, max_length=2048)


class StoryBase(SQLModel):
    """The story columns readers see (``StoryOut``); the table adds its bookkeeping times."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(nullable=False)
    first_article_id: int | None = Field(default=None)
    first_seen_at: datetime = _created()
    last_seen_at: datetime = _created()
    article_count: int = Field(default=1, nullable=False)
    source_count: int = Field(default=1, nullable=False)
    is_ukraine_security: bool = Field(default=False, nullable=False)
    security_score: float = Field(default=0.0, nullable=False)
    topics: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)


class Story(StoryBase, table=True):
    """A cluster of articles that report the same story (syndicated or re-written copies)."""

    __tablename__ = "stories"
    __table_args__ = (
        sa.Index("ix_stories_label_last_seen", "is_ukraine_security", "last_seen_at"),
    )

    created_at: datetime = _created()
    updated_at: datetime = _created()


class ArticleBase(SQLModel):
    """The article columns every reader sees (``ArticleOut``). The table adds the body
    (shown only when asked for), the dedup fingerprints, the title history, the
    classifier's evidence and the bookkeeping times."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(nullable=False)
    url: str = Field(max_length=4096, nullable=False)
    canonical_url: str = Field(max_length=4096, unique=True, nullable=False)
    feed_id: int | None = Field(default=None, foreign_key="feeds.id", ondelete="SET NULL")
    source_domain: str | None = Field(default=None, max_length=255)
    author: str | None = Field(default=None, max_length=1000)
    summary: str | None = Field(default=None)
    published_at: datetime | None = _ts()
    fetched_at: datetime = _created()
    language: str | None = Field(default=None, max_length=16)
    extraction_method: str = Field(max_length=32, nullable=False)
    is_ukraine_security: bool = Field(default=False, nullable=False)
    security_score: float = Field(default=0.0, nullable=False)
    topics: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    classifier_version: str = Field(max_length=64, nullable=False)
    story_id: int | None = Field(default=None, foreign_key="stories.id", ondelete="SET NULL")
    duplicate_of_id: int | None = Field(
        default=None, foreign_key="articles.id", ondelete="SET NULL"
    )
    dedup_reason: str | None = Field(default=None)


class Article(ArticleBase, table=True):
    """A stored article: extracted text, dedup links and classification."""

    __tablename__ = "articles"
    __table_args__ = (
        sa.UniqueConstraint("feed_id", "guid", name="uq_articles_feed_guid"),
        sa.Index("ix_articles_label_published", "is_ukraine_security", "published_at"),
        sa.Index("ix_articles_feed_published", "feed_id", "published_at"),
        sa.Index("ix_articles_story", "story_id"),
        sa.Index("ix_articles_content_hash", "content_hash"),
        sa.Index("ix_articles_fetched_at", "fetched_at"),
    )

    guid: str | None = Field(default=None, max_length=2048)
    title_history: list[dict[str, Any]] = Field(
        default_factory=list, sa_type=JSONType, nullable=False
    )
    body: str = Field(default="", nullable=False)
    content_hash: str = Field(max_length=64, nullable=False)
    minhash: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    created_at: datetime = _created()
    updated_at: datetime = _created()


def article_sort_time() -> sa.ColumnElement[datetime]:
    """When an article happened, for ordering: its publication time, or when we stored
    it for articles without one. ``ix_articles_newest`` indexes exactly this expression,
    and both planners use the index only for a query that spells it the same way, so
    listings build it here rather than write their own."""
    table = Article.__table__  # type: ignore[attr-defined]
    return sa.func.coalesce(table.c.published_at, table.c.created_at, type_=UTCDateTime())


# The newest-first listing (`GET /articles`, migration 0007): read in index order and
# stop after a page, instead of sorting every article per page. The other two serve the
# label and feed filters, which SQLite (no statistics unless someone runs ANALYZE) would
# otherwise answer from ix_articles_label_published / ix_articles_feed_published by
# sorting every article with that label or of that feed.
# Outside the class because the expression needs the table's columns.
_articles = Article.__table__  # type: ignore[attr-defined]
sa.Index("ix_articles_newest", article_sort_time().desc(), _articles.c.id.desc())
sa.Index(
    "ix_articles_label_newest",
    _articles.c.is_ukraine_security,
    article_sort_time().desc(),
    _articles.c.id.desc(),
)
sa.Index(
    "ix_articles_feed_newest",
    _articles.c.feed_id,
    article_sort_time().desc(),
    _articles.c.id.desc(),
)


class Entry(SQLModel, table=True):
    """The work ledger: one row per feed item we have seen, and what became of it.

    Polling inserts entries idempotently; processing moves them to ``stored``
    or ``failed``. Operators look here for per-URL errors; downstream apps
    read ``articles``, which holds only what was stored.
    """

    __tablename__ = "entries"
    __table_args__ = (
        sa.UniqueConstraint("feed_id", "entry_key", name="uq_entries_feed_key"),
        sa.Index("ix_entries_status_updated", "status", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = Field(default=None, foreign_key="feeds.id", ondelete="CASCADE")
    entry_key: str = Field(max_length=128, nullable=False)
    guid: str | None = Field(default=None, max_length=2048)
    url: str = Field(max_length=4096, nullable=False)
    title: str | None = Field(default=None)
    summary: str | None = Field(default=None)
    author: str | None = Field(default=None, max_length=1000)
    published_at: datetime | None = _ts()
    status: str = Field(default="pending", max_length=16, nullable=False)
    attempts: int = Field(default=0, nullable=False)
    error: str | None = Field(default=None)
    error_class: str | None = Field(default=None, max_length=64)
    http_status: int | None = Field(default=None)
    article_id: int | None = Field(default=None, foreign_key="articles.id", ondelete="SET NULL")
    crawl_request_id: int | None = Field(default=None)
    first_seen_at: datetime = _created()
    updated_at: datetime = _created()


class ArticleBand(SQLModel, table=True):
    """LSH band keys of each article's MinHash: the shared near-duplicate index.

    A new article looks up candidates by its band keys (indexed), so the cost
    of a dedup lookup depends on how many articles share a band, not on how
    many are stored.
    """

    __tablename__ = "article_bands"

    band_key: str = Field(primary_key=True, max_length=48)
    article_id: int = Field(
        primary_key=True, foreign_key="articles.id", ondelete="CASCADE", index=True
    )


class CrawlRequestBase(SQLModel):
    """Every column of a re-crawl request; readers see them all (``CrawlRequestOut``)."""

    id: int | None = Field(default=None, primary_key=True)
    requested_by: str = Field(max_length=200, nullable=False)
    requested_at: datetime = _created()
    kind: str = Field(max_length=16, nullable=False)  # feed | url | since
    target: str = Field(nullable=False)
    force: bool = Field(default=False, nullable=False)
    status: str = Field(default="queued", max_length=16, nullable=False)
    total: int = Field(default=0, nullable=False)
    done: int = Field(default=0, nullable=False)
    failed: int = Field(default=0, nullable=False)
    finished_at: datetime | None = _ts()
    error: str | None = Field(default=None)
    """Why a ``failed`` request failed (no such feed, the poll's error); NULL otherwise.
    Per-entry errors stay on ``entries.error``."""


class CrawlRequest(CrawlRequestBase, table=True):
    """An operator's re-crawl request: who asked, for what, and how far it got."""

    __tablename__ = "crawl_requests"


class Lock(SQLModel, table=True):
    """Named row locks used to serialise short critical sections across workers.

    Updating the row first thing in a transaction takes a write lock on both
    SQLite (the database write lock) and PostgreSQL (a row lock), so the same
    code serialises story assignment on either database.
    """

    __tablename__ = "locks"

    name: str = Field(primary_key=True, max_length=64)
    counter: int = Field(default=0, nullable=False)


# The change feed (docs/schema.md, "Change feed"). Positions and ids are 64-bit: every
# insert or update of an article, story or feed takes one, for as long as the log runs.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""BIGINT on PostgreSQL; INTEGER on SQLite, where only that type makes a primary key
the auto-numbered rowid (and is 64-bit anyway)."""


class Change(SQLModel, table=True):
    """One recorded insert, update or delete of an article, story or feed.

    Database triggers (migration 0003) write a row with no position in the same
    transaction as the change, so a change is logged exactly when it commits;
    :mod:`worker.store.changes` then numbers committed rows under a lock. Readers
    see positioned rows only, which is what makes the log gap-safe.
    """

    __tablename__ = "change_log"
    __table_args__ = (sa.Index("ix_change_log_position", "position", unique=True),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    position: int | None = Field(default=None, sa_type=sa.BigInteger)
    kind: str = Field(max_length=16, nullable=False)  # article | story | feed
    entity_id: int = Field(nullable=False)
    op: str = Field(max_length=8, nullable=False)  # insert | update | delete
    changed_at: datetime = _created()


class ChangeLogState(SQLModel, table=True):
    """The change log's one bookkeeping row: the last position given out, and how far
    retention has pruned (a reader behind that must resync)."""

    __tablename__ = "change_log_state"

    id: int = Field(default=1, primary_key=True)
    last_position: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    horizon: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    pruned_at: datetime | None = _ts()


class CopyRun(SQLModel, table=True):
    """A run of ``ingest db copy`` that wrote into this database, and what it found.

    Written only in the copy's *target*. It is how a later run knows the target
    holds an earlier copy of the same source (and may be brought up to date) rather
    than someone's data (which the copy refuses to overwrite)."""

    __tablename__ = "copy_runs"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=2048, nullable=False)
    started_at: datetime = _created()
    finished_at: datetime | None = _ts()
    identical: bool | None = Field(default=None)
    report: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)


# Webhooks (docs/schema.md, "subscriptions"; docs/operations.md, "Webhooks").


class SubscriptionBase(SQLModel):
    """The subscription columns an operator sees (``SubscriptionOut``): where events go,
    which ones, and how delivery is going. The table adds the secret and the lease."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2048, nullable=False)
    label: str | None = Field(default=None, max_length=32)
    topics: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    kinds: list[str] = Field(default_factory=lambda: ["article"], sa_type=JSONType, nullable=False)
    state: str = Field(default="active", max_length=16, nullable=False, index=True)
    position: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    consecutive_failures: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None)
    last_http_status: int | None = Field(default=None)
    last_attempt_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    next_attempt_at: datetime | None = _ts()
    paused_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Subscription(SubscriptionBase, table=True):
    """A webhook subscriber: changes of the change log that match its filter are POSTed
    to its URL, signed with its secret, in log order, from ``position`` on."""

    __tablename__ = "subscriptions"

    secret: str = Field(max_length=128, nullable=False)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _ts()
