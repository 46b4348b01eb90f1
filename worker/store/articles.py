"""Writer of ``articles``, ``stories`` and ``article_bands``: storing one extracted,
classified article, deduplicated, and joined to its story.

An article is found by its canonical URL (then feed+GUID) and updated rather
than duplicated; the unique constraints back that up when two workers race.
Story assignment runs under a named lock (:func:`worker.store.sql.take_lock`),
so two workers storing copies of one wire story at the same moment still end
in one story, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col

from .. import dedup
from ..classify import Classification
from ..models import (
    Article,
    ArticleBand,
    Story,
    utcnow,
)
from .sql import TextArray, dialect_insert, run_core, table_of, take_lock

DEDUP_LOCK = "dedup"


MAX_NEAR_DUP_CANDIDATES = 50


def recently_fetched_articles(
    session: Session, *, canonical_urls: Sequence[str], since: datetime
) -> dict[str, tuple[int, bool]]:
    """``{canonical URL: (id, is_ukraine_security)}`` of the articles at ``canonical_urls``
    fetched since ``since`` (URLs with none are absent).

    Lets an entry that links to a page we stored moments ago (the same story in
    a second feed) be linked to it without fetching and extracting it again.
    One statement for a whole batch of entries.
    """
    if not canonical_urls:
        return {}
    rows = run_core(
        session,
        _RECENTLY_FETCHED,
        {"canonical_urls": sorted(set(canonical_urls)), "since": since},
    )
    return {str(row[0]): (int(row[1]), bool(row[2])) for row in rows}


_RECENTLY_FETCHED = (
    sa.select(col(Article.canonical_url), col(Article.id), col(Article.is_ukraine_security))
    .where(col(Article.canonical_url).in_(sa.bindparam("canonical_urls", expanding=True)))
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


def _stored_candidate(row: Any) -> dedup.StoredFingerprint:
    return dedup.StoredFingerprint(
        content_hash=row.content_hash,
        minhash=row.minhash,
        title=row.title,
        published_at=row.published_at,
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


# With the story's topics: joining the story merges the new article's topics into
# them, and reading them here saves reading the story on its own. As JSON text,
# decoded only for the candidate that wins (:func:`_story_topics`), not for all 50.
_MATCH_SELECT = sa.select(
    *(getattr(Article, name) for name in _MATCH_COLUMNS),
    sa.cast(col(Story.topics), sa.Text).label("story_topics"),
).outerjoin(Story, col(Story.id) == col(Article.story_id))


def _story_topics(match_row: Any) -> list[str]:
    text = match_row.story_topics
    return [str(topic) for topic in json.loads(text)] if text else []


# Statements run for every stored article, built once with bound parameters:
# building a select and its cache key per call cost more than running it.
#
# What an article's store looks up, in one statement (one round trip on PostgreSQL,
# where it took three): the article this record updates, i.e. the one at its
# canonical URL (preference 0), else the one with its feed and GUID (1); the first
# stored article with the same body (2), which is its exact duplicate if it is new;
# and its near-duplicate candidates from the LSH band index (3). Each of the first
# three branches keeps its own unique or plain index and returns at most one row; a
# GUID or body hash of None matches nothing (``= NULL`` is never true). The
# candidates branch runs only when none of the others found a row.
def _lookup_branch(preference: int, *conditions: Any) -> Any:
    # As a subquery: SQLite takes no ORDER BY or LIMIT on a member of a UNION.
    first = (
        _MATCH_SELECT.add_columns(sa.literal_column(str(preference)).label("preference"))
        .where(*conditions)
        .order_by(col(Article.id))
        .limit(1)
        .subquery()
    )
    return sa.select(*first.c)


_CANDIDATE_PREFERENCE = 3
"""The lookup's branch of near-duplicate candidates (any number of rows)."""


def _candidate_ids_sqlite() -> Any:
    # Most shared keys first, then the most recent: the cap keeps a lookup's cost
    # bounded however many stored articles share a popular key.
    return (
        sa.select(col(ArticleBand.article_id))
        .where(col(ArticleBand.band_key).in_(sa.bindparam("keys", expanding=True)))
        .group_by(col(ArticleBand.article_id))
        .order_by(sa.func.count().desc(), col(ArticleBand.article_id).desc())
        .limit(MAX_NEAR_DUP_CANDIDATES)
    )


def _candidate_ids_pg() -> Any:
    # PostgreSQL: the same, with the keys as one array and each key looked up on its
    # own. ``band_key IN (...)`` left the choice to the planner, and a young
    # article_bands (no ANALYZE yet: the first minutes of a new database, or of any
    # benchmark) has no statistics: it took 74 keys for a third of the table and
    # read all of it (a sequential scan, 28 ms a lookup at 25,000 rows in
    # bench/run.py, growing with every article). One index probe per key does not
    # depend on statistics: the ``OFFSET 0`` keeps the per-key subquery from being
    # flattened into a join that the planner could again answer with a scan, and
    # ``id = ANY(ARRAY(...))`` fetches the (at most 50) rows by primary key where
    # ``id IN (...)`` was hashed against a scan of the articles.
    keys = (
        sa.func.unnest(sa.bindparam("keys", type_=TextArray))
        .table_valued("band_key")
        .render_derived(name="k")
    )
    per_key = (
        sa.select(col(ArticleBand.article_id))
        .where(col(ArticleBand.band_key) == keys.c.band_key)
        .offset(sa.literal_column("0"))
        .lateral("b")
    )
    ids = (
        sa.select(per_key.c.article_id)
        .select_from(keys)
        .join(per_key, sa.true())
        .group_by(per_key.c.article_id)
        .order_by(sa.func.count().desc(), per_key.c.article_id.desc())
        .limit(MAX_NEAR_DUP_CANDIDATES)
    )
    return sa.func.array(ids.scalar_subquery())


def _own_or_same_body(table: Any) -> list[tuple[Any, ...]]:
    """The conditions of the lookup's first three branches, on ``table``: the article at
    the record's canonical URL (preference 0), the one with its feed and GUID (1), and one
    with the same body (2)."""
    return [
        (table.c.canonical_url == sa.bindparam("canonical_url"),),
        (table.c.feed_id == sa.bindparam("feed_id"), table.c.guid == sa.bindparam("guid")),
        (table.c.content_hash == sa.bindparam("content_hash"),),
    ]


_STORED = table_of(Article).alias("stored")
"""An alias for the candidates' gates, so they never correlate with the query around them."""


def _lookup(postgres: bool) -> Any:
    # The candidates only when no earlier branch can answer: an update or an exact copy
    # (half of what a wire-heavy feed set stores) skips the band index. The gates are the
    # earlier branches' conditions, uncorrelated, so PostgreSQL tests them once, before
    # the branch's scan.
    gates = [
        ~sa.exists(sa.select(sa.literal_column("1")).select_from(_STORED).where(*conditions))
        for conditions in _own_or_same_body(_STORED)
    ]
    candidates = _MATCH_SELECT.add_columns(
        sa.literal_column(str(_CANDIDATE_PREFERENCE)).label("preference")
    ).where(
        col(Article.id) == sa.any_(_candidate_ids_pg())
        if postgres
        else col(Article.id).in_(_candidate_ids_sqlite()),
        *gates,
    )
    return sa.union_all(
        *(
            _lookup_branch(preference, *conditions)
            for preference, conditions in enumerate(_own_or_same_body(table_of(Article)))
        ),
        candidates,
    )


_LOOKUP = {"postgresql": _lookup(postgres=True), "sqlite": _lookup(postgres=False)}


@dataclass(frozen=True)
class _Lookup:
    existing_id: int | None
    """The stored article this record updates, if any."""
    same_body: Any
    """The first stored article with the same body hash, as a row of ``_MATCH_COLUMNS``."""
    candidates: list[Any]
    """Near-duplicate candidates from the band index, rows of ``_MATCH_COLUMNS`` by id."""


def _look_up(session: Session, record: ArticleRecord, *, window: timedelta) -> _Lookup:
    by_guid = bool(record.guid) and record.feed_id is not None
    fp = record.fingerprint
    found = run_core(
        session,
        _LOOKUP[session.get_bind().dialect.name],
        {
            "canonical_url": record.canonical_url,
            "feed_id": record.feed_id if by_guid else None,
            "guid": record.guid if by_guid else None,
            "content_hash": fp.content_hash or None,
            "keys": sorted(set(dedup.query_keys(fp, window=window))),
        },
    ).all()
    # Each of the first three branches returns at most one row.
    by_preference = {
        int(row.preference): row for row in found if row.preference != _CANDIDATE_PREFERENCE
    }
    existing = by_preference.get(0) or by_preference.get(1)
    candidates = sorted(
        (row for row in found if row.preference == _CANDIDATE_PREFERENCE), key=lambda r: r.id
    )
    return _Lookup(None if existing is None else int(existing.id), by_preference.get(2), candidates)


def _find_story_match(
    record: ArticleRecord, lookup: _Lookup, *, window: timedelta
) -> tuple[Any, dedup.Match] | None:
    """Exact (same body hash) first, then the best near-duplicate of the band index's
    candidates, both found by :func:`_look_up`.

    Returns the matching article as a row of ``_MATCH_COLUMNS`` and the verdict.
    """
    # The same body is an exact copy (its hash is non-empty: the lookup binds no empty
    # hash), so it is the story's match whatever the candidates are.
    rows = [lookup.same_body] if lookup.same_body is not None else lookup.candidates
    found = dedup.best_match(
        record.fingerprint, [_stored_candidate(row) for row in rows], window=window
    )
    return None if found is None else (rows[found[0]], found[1])


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


def _story_join_values(article_id: Any) -> dict[str, Any]:
    """The SET clause that counts one new article into its story: O(1) in the story's size.

    Equivalent to :func:`refresh_story` for an insert (the new article has the
    highest id and the latest ``created_at``; ``tests/integration/test_store.py``
    checks the two agree), without reading every copy back: a wire story
    syndicated by fifty outlets costs the fiftieth copy the same as the second.
    Counters move relative to the row's own values in one ``UPDATE``, so nothing
    of the story is read first but its topics, which come with the dedup lookup
    (``story_topics``) and are merged in Python. On SQLite a new story is inserted
    empty and counts its first article here like any other; PostgreSQL writes it with
    its first article already counted (:func:`_insert_article_starting_story_pg`).
    Runs under the dedup lock.

    ``article_id``: a bound parameter (SQLite: the article was inserted just
    before) or the id the same statement's insert returns (PostgreSQL).
    """
    story = table_of(Story)
    articles = table_of(Article).alias("other")
    same_source_seen = sa.exists(
        sa.select(sa.literal_column("1"))
        .select_from(articles)
        .where(articles.c.story_id == story.c.id)
        .where(articles.c.id != article_id)
        .where(
            sa.func.coalesce(articles.c.source_domain, articles.c.canonical_url)
            == sa.bindparam("join_source", type_=sa.String)
        )
    )
    created = sa.bindparam("join_created_at", type_=story.c.last_seen_at.type)
    score = sa.bindparam("join_score", type_=sa.Float)
    # Constants as SQL literals: a bound literal inside PostgreSQL's CTE form
    # lost its value when the cached statement was run again.
    zero: Any = sa.literal_column("0")
    one: Any = sa.literal_column("1")
    return {
        "first_article_id": sa.func.coalesce(story.c.first_article_id, article_id),
        "article_count": story.c.article_count + one,
        "source_count": story.c.source_count + sa.case((same_source_seen, zero), else_=one),
        "last_seen_at": sa.case(
            (story.c.last_seen_at >= created, story.c.last_seen_at), else_=created
        ),
        "is_ukraine_security": sa.or_(
            story.c.is_ukraine_security, sa.bindparam("join_positive", type_=sa.Boolean)
        ),
        "security_score": sa.case(
            (story.c.security_score >= score, story.c.security_score), else_=score
        ),
        "topics": sa.bindparam("join_topics", type_=story.c.topics.type),
        "updated_at": sa.bindparam("join_updated_at", type_=story.c.updated_at.type),
    }


def _article_columns(prefix: str = "") -> dict[str, Any]:
    """Every column but the id, each bound to ``prefix + name``."""
    return {
        c.name: sa.bindparam(prefix + c.name, type_=c.type)
        for c in table_of(Article).c
        if c.name != "id"
    }


# SQLite: the article (RETURNING its id), then its story's counters.
_INSERT_ARTICLE = (
    sa.insert(table_of(Article)).values(_article_columns()).returning(table_of(Article).c.id)
)
_JOIN_STORY = (
    sa.update(table_of(Story))
    .where(table_of(Story).c.id == sa.bindparam("story_id", type_=sa.Integer))
    .values(_story_join_values(sa.bindparam("article_id", type_=sa.Integer)))
)


def _insert_bands_pg(article_id: Any) -> Any:
    """PostgreSQL: ``INSERT INTO article_bands SELECT unnest(:band_keys), <article_id>``.

    One statement with the keys as an array: one round trip and one execution,
    where executemany ran ~35 (pipelined, but each parsed, bound and executed by
    the server on its own). ``article_id``: a bound parameter, or the id a
    sibling insert returns (:func:`_insert_article_joining_story_pg`).
    """
    keys = sa.func.unnest(sa.bindparam("band_keys", type_=TextArray))
    return (
        postgresql.insert(table_of(ArticleBand))
        .from_select(["band_key", "article_id"], sa.select(keys.label("band_key"), article_id))
        .on_conflict_do_nothing()
    )


_INSERT_BANDS_PG = _insert_bands_pg(sa.bindparam("article_id", type_=sa.Integer))


def _insert_article_joining_story_pg() -> Any:
    """PostgreSQL: the article's insert, its story's update and its band keys in one
    statement.

    One round trip for what took five (read the story, insert, look for the same
    source, update the story, index the bands; ``band_keys`` is empty for an exact
    duplicate, see :func:`_index_bands`). The update's ``EXISTS`` runs on the statement's
    snapshot, which does not see the article being inserted, as wanted. The
    article's parameters are prefixed ``a_``: an UPDATE adds any parameter named
    like one of its table's columns (``title``, ``created_at``) to its SET clause.
    """
    story = table_of(Story)
    inserted = (
        sa.insert(table_of(Article))
        .values(_article_columns("a_"))
        .returning(table_of(Article).c.id)
        .cte("inserted")
    )
    new_id = sa.select(inserted.c.id).scalar_subquery()
    joined = (
        sa.update(story)
        .where(story.c.id == sa.bindparam("story_id", type_=sa.Integer))
        .values(_story_join_values(new_id))
        .returning(story.c.id)
        .cte("joined")
    )
    banded = _insert_bands_pg(inserted.c.id).cte("banded")
    return sa.select(inserted.c.id).add_cte(joined).add_cte(banded)


_INSERT_ARTICLE_JOINING_STORY_PG = _insert_article_joining_story_pg()


def _insert_article_starting_story_pg() -> Any:
    """PostgreSQL: an article that starts a new story, the story and the article's band
    keys in one statement (``RETURNING`` the article's and the story's ids).

    One round trip where it took two (insert an empty story, then the article joining
    it): most articles a desk stores start a story of their own. The article's id is
    drawn from its sequence first, so the story can name its first article and the
    article its story within one statement. The story is inserted first (the article
    reads its id), so the change log has the story's insert before the article's, the
    order a reader applying it with foreign keys needs. It is written as
    :func:`_story_join_values` would leave an empty story after its first article: one
    article, one source, seen at ``join_created_at``, the article's label, score and
    topics.
    """
    story = table_of(Story)
    article = table_of(Article)
    # SQL literals, not bound ones: see the note on constants in _story_join_values.
    article_id = sa.select(
        sa.literal_column("nextval(pg_get_serial_sequence('articles', 'id'))").label("id")
    ).cte("article_id")
    created = sa.bindparam("join_created_at", type_=story.c.first_seen_at.type)
    first_counted: dict[str, Any] = {
        "title": sa.bindparam("story_title", type_=story.c.title.type),
        "first_article_id": article_id.c.id,
        "first_seen_at": created,
        "last_seen_at": created,
        "article_count": sa.literal_column("1"),
        "source_count": sa.literal_column("1"),
        "is_ukraine_security": sa.bindparam("join_positive", type_=sa.Boolean),
        "security_score": sa.bindparam("join_score", type_=sa.Float),
        "topics": sa.bindparam("join_topics", type_=story.c.topics.type),
        "created_at": created,
        "updated_at": sa.bindparam("join_updated_at", type_=story.c.updated_at.type),
    }
    started = (
        sa.insert(story)
        .from_select(list(first_counted), sa.select(*first_counted.values()))
        .returning(story.c.id)
        .cte("started")
    )
    columns = _article_columns("a_")
    del columns["story_id"]
    inserted = (
        sa.insert(article)
        .from_select(
            ["id", *columns, "story_id"],
            sa.select(article_id.c.id, *columns.values(), started.c.id).select_from(
                article_id.join(started, sa.true())  # one row each
            ),
        )
        .returning(article.c.id)
        .cte("inserted")
    )
    banded = _insert_bands_pg(inserted.c.id).cte("banded")
    return sa.select(inserted.c.id, sa.select(started.c.id).scalar_subquery()).add_cte(banded)


_INSERT_ARTICLE_STARTING_STORY_PG = _insert_article_starting_story_pg()


def _insert_empty_story() -> Any:
    """A new story with no articles yet (``RETURNING`` its id): its first article is
    counted into it like any other (:func:`_story_join_values`)."""
    story = table_of(Story)
    now = sa.bindparam("now", type_=story.c.first_seen_at.type)
    return (
        sa.insert(story)
        .values(
            title=sa.bindparam("title", type_=sa.String),
            first_seen_at=now,
            last_seen_at=now,
            article_count=0,
            source_count=0,
            is_ukraine_security=False,
            security_score=0.0,
            topics=sa.bindparam("topics", type_=story.c.topics.type),
            created_at=now,
            updated_at=now,
        )
        .returning(story.c.id)
    )


_INSERT_STORY = _insert_empty_story()


def save_article(
    session: Session,
    record: ArticleRecord,
    *,
    window: timedelta = timedelta(days=3),
    lock: bool = True,
) -> SaveOutcome:
    """Insert or update one article and place it in a story.

    Runs under the dedup lock: the lookups (same URL, same GUID, same body,
    similar body) and the insert happen as one serialised step, which is what
    keeps racing workers from creating two stories for one event. ``lock=False``:
    this transaction already holds it (a batch that stores several articles takes
    it once, with its first).
    """
    if lock:
        take_lock(session, DEDUP_LOCK)
    now = utcnow()
    fp = record.fingerprint
    lookup = _look_up(session, record, window=window)
    existing = None if lookup.existing_id is None else session.get(Article, lookup.existing_id)
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

    found = _find_story_match(record, lookup, window=window)
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
    story_topics: list[str] = []
    if found is not None:
        match_article, verdict = found
        values["story_id"] = match_article.story_id
        story_topics = _story_topics(match_article)
        reason = values["dedup_reason"] = verdict.reason
        if verdict.exact:
            action = "duplicate"
            duplicate_of = match_article.duplicate_of_id or match_article.id
            values["duplicate_of_id"] = duplicate_of
        else:
            action = "near_duplicate"
    postgres = session.get_bind().dialect.name == "postgresql"
    join = {
        "join_source": source_domain or record.canonical_url,
        "join_created_at": now,
        "join_positive": values["is_ukraine_security"],
        "join_score": values["security_score"],
        "join_topics": story_topics + [t for t in values["topics"] if t not in story_topics],
        "join_updated_at": now,
    }
    if postgres:
        params = {
            **{f"a_{name}": value for name, value in values.items()},
            **join,
            "band_keys": _band_keys(fp, duplicate=duplicate_of is not None),
        }
        if values["story_id"] is None:
            row = run_core(
                session, _INSERT_ARTICLE_STARTING_STORY_PG, {**params, "story_title": record.title}
            ).one()
            article_id, values["story_id"] = int(row[0]), int(row[1])
        else:
            article_id = int(
                run_core(
                    session,
                    _INSERT_ARTICLE_JOINING_STORY_PG,
                    {**params, "story_id": values["story_id"]},
                ).scalar_one()
            )
    else:
        if values["story_id"] is None:
            # Created empty: the join below counts the first article like any other.
            values["story_id"] = run_core(
                session, _INSERT_STORY, {"title": record.title, "now": now, "topics": []}
            ).scalar_one()
        join["story_id"] = values["story_id"]
        article_id = int(run_core(session, _INSERT_ARTICLE, values).scalar_one())
        run_core(session, _JOIN_STORY, {**join, "article_id": article_id})
        # Index only, no DELETE first: see _index_bands for why a new id has no bands.
        _index_bands(session, article_id, fp, duplicate=duplicate_of is not None)
    return SaveOutcome(
        article_id=article_id,
        story_id=int(values["story_id"]),
        action=action,
        duplicate_of_id=duplicate_of,
        reason=reason,
    )


def _replace_bands(
    session: Session, article_id: int, fp: dedup.Fingerprint, *, duplicate: bool = False
) -> None:
    """Index ``fp`` under a stored article's band keys, replacing what it had.

    For an article being updated (a re-fetch, or an at-least-once re-run of the
    entry that stored it): its body, and so its keys, may have changed.
    """
    session.execute(sa.delete(ArticleBand).where(col(ArticleBand.article_id) == article_id))
    _index_bands(session, article_id, fp, duplicate=duplicate)


def _index_bands(
    session: Session, article_id: int, fp: dedup.Fingerprint, *, duplicate: bool = False
) -> None:
    """Index ``fp`` under the article's band keys.

    Called alone only for an article this transaction has just inserted: its id
    was handed out by that INSERT, and ``article_bands.article_id`` is a foreign key
    to ``articles.id`` with ``ON DELETE CASCADE`` (enforced by PostgreSQL, and by
    SQLite with the ``foreign_keys`` pragma that :mod:`worker.db` sets on every
    connection), so no band row can name an id that no article had before this
    insert, even one SQLite reuses after the newest article was deleted. The DELETE
    that :func:`_replace_bands` runs first was 3-10 % of the statements of storing a
    new article (docs/scale-store.md) and found nothing. A re-run of the same entry
    finds the article by its URL and takes the update path, which still replaces.

    An exact duplicate is not indexed: its original (``duplicate_of_id``) is,
    and anything that matches the copy matches the original as well. So the
    fiftieth copy of a wire story meets one candidate per story, not
    forty-nine copies, and the band table grows with stories, not copies.
    """
    keys = _band_keys(fp, duplicate=duplicate)
    if not keys:
        return
    if session.get_bind().dialect.name == "postgresql":
        run_core(session, _INSERT_BANDS_PG, {"band_keys": keys, "article_id": article_id})
        return
    # executemany with one statement: compiled once and cached, unlike a
    # multi-row VALUES whose SQL changes with the number of keys.
    run_core(
        session,
        dialect_insert(session, table_of(ArticleBand)).on_conflict_do_nothing(),
        [{"band_key": k, "article_id": article_id} for k in keys],
    )


def _band_keys(fp: dedup.Fingerprint, *, duplicate: bool) -> list[str]:
    """The keys to index an article under: none for an exact duplicate (see
    :func:`_index_bands`)."""
    return [] if duplicate else sorted(set(dedup.index_keys(fp)))


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


def detach_from_feed(session: Session, feed_id: int) -> None:
    """A removed feed's articles stay, with ``feed_id`` NULL.

    Explicit rather than ``ON DELETE SET NULL``, which SQLite honours only when
    the connection enabled foreign keys.
    """
    session.execute(sa.update(Article).where(col(Article.feed_id) == feed_id).values(feed_id=None))
