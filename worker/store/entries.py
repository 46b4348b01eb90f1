"""Writer of ``entries``: the ledger of every item a feed (or an operator) offered.

An entry moves ``pending`` → ``stored`` | ``failed``. Inserts are keyed by
(feed_id, entry_key), so a repeated or racing poll adds each item once;
attempts are counted so a crash loop can be capped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from ..errors import ERROR_TEXT_MAX_CHARS
from ..feeds import FeedItem
from ..models import (
    Entry,
    utcnow,
)
from .sql import dialect_insert, run_core, table_of


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
    items = list(items)
    if not items:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _add_entries_pg(
            session, feed_id=feed_id, items=items, crawl_request_id=crawl_request_id, now=now
        )
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
    # One statement for the whole poll (SQLAlchemy's "insertmanyvalues": a few
    # multi-row INSERT ... RETURNING round trips); building and compiling an
    # INSERT per item cost ~1.5 ms an entry on the poll path (bench/run.py).
    stmt = (
        dialect_insert(session, table_of(Entry))
        .on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
        .returning(table_of(Entry).c.id)
    )
    return sorted(int(entry_id) for entry_id in session.execute(stmt, rows).scalars())


_ITEM_COLUMNS = ("entry_key", "guid", "url", "title", "summary", "author", "published_at")
"""The columns that differ from item to item, sent to PostgreSQL as one array each."""


def _array_of(column: sa.Column[Any]) -> Any:
    """The array type a column's values are sent as: the column's own type (so
    ``UTCDateTime`` writes each time as it writes one), but text as unbounded
    ``VARCHAR``: an explicit cast to ``VARCHAR(n)`` truncates silently, where the insert
    into the column refuses a value too long, as the row-by-row insert did."""
    text = isinstance(getattr(column.type, "impl", column.type), sa.String)  # AutoString too
    kind = sa.String() if text else column.type
    return postgresql.ARRAY(kind)


def _insert_items_pg() -> Any:
    """``INSERT INTO entries … SELECT … FROM unnest(:entry_key, :guid, …)``: a poll's
    items as one array per column.

    Why not the multi-row ``VALUES`` SQLAlchemy writes for a list of rows: its text
    grows with the number of items (13 parameters each), so every poll sent a
    different statement that psycopg had to parse for its placeholders afresh and the
    server to plan afresh. This one has the same text whatever the count: psycopg
    caches its parse and the server prepares it once per connection
    (``python -m bench.profile_poll`` measures the poll's client and server CPU).
    """
    entry = table_of(Entry)
    arrays = (
        sa.func.unnest(
            *(sa.bindparam(name, type_=_array_of(entry.c[name])) for name in _ITEM_COLUMNS)
        )
        .table_valued(*_ITEM_COLUMNS)
        .render_derived(name="items")
    )
    now = sa.bindparam("now", type_=entry.c.first_seen_at.type)
    constants = {
        "feed_id": sa.bindparam("feed_id", type_=sa.Integer),
        "status": sa.literal_column("'pending'"),
        "attempts": sa.literal_column("0"),
        "crawl_request_id": sa.bindparam("crawl_request_id", type_=sa.Integer),
        "first_seen_at": now,
        "updated_at": now,
    }
    select = sa.select(*(arrays.c[name] for name in _ITEM_COLUMNS), *constants.values())
    return (
        postgresql.insert(entry)
        .from_select([*_ITEM_COLUMNS, *constants], select)
        .on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
        .returning(entry.c.id)
    )


_INSERT_ITEMS_PG = _insert_items_pg()


def _add_entries_pg(
    session: Session,
    *,
    feed_id: int | None,
    items: list[FeedItem],
    crawl_request_id: int | None,
    now: datetime,
) -> list[int]:
    params: dict[str, Any] = {
        name: [getattr(item, name) for item in items] for name in _ITEM_COLUMNS
    }
    params.update(feed_id=feed_id, crawl_request_id=crawl_request_id, now=now)
    inserted = run_core(session, _INSERT_ITEMS_PG, params).scalars()
    return sorted(int(entry_id) for entry_id in inserted)


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


def defer_entry(session: Session, *, entry_id: int, reason: str, uncount: bool) -> None:
    """Note why an unstored entry waits (its host is paused) and touch it.

    ``uncount`` takes back the attempt counted when this delivery started: it never
    reached the host. Touching ``updated_at`` keeps beat's stale-entry sweep from
    sending a second message while the deferred one waits; the note is replaced
    when the entry is stored or failed.
    """
    attempts: Any = col(Entry.attempts)
    if uncount:
        attempts = sa.case((attempts > 0, attempts - 1), else_=attempts)
    session.execute(
        sa.update(Entry)
        .where(col(Entry.id) == entry_id)
        .where(col(Entry.status) != "stored")
        .values(
            error=reason[:ERROR_TEXT_MAX_CHARS],
            error_class="host_paused",
            attempts=attempts,
            updated_at=utcnow(),
        )
    )


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


def entries_to_process(session: Session, entry_ids: Sequence[int]) -> dict[int, Any]:
    """The columns that processing reads of each entry that exists, as rows (no ORM
    objects), by id: one statement for a whole batch (``process_entries``), where one
    per entry cost a round trip each on the pool process's main thread."""
    if not entry_ids:
        return {}
    rows = run_core(session, _ENTRIES_TO_PROCESS, {"entries": list(entry_ids)})
    return {int(row.id): row for row in rows}


_ENTRIES_TO_PROCESS = sa.select(
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
).where(col(Entry.id).in_(sa.bindparam("entries", expanding=True)))


@dataclass(frozen=True)
class StoredMark:
    """An entry to record as stored (:func:`mark_entries_stored`).

    ``note`` says how it was stored when that was not the normal way (the feed
    summary used, or a known URL linked without a fetch), classed by ``note_class``
    in ``error_class`` so operators can filter on it; ``count_attempt`` counts an
    attempt not counted at start.
    """

    entry_id: int
    article_id: int
    note: str | None = None
    note_class: str = "fallback"
    count_attempt: bool = False


def mark_entry_stored(
    session: Session,
    *,
    entry_id: int,
    article_id: int,
    note: str | None = None,
    note_class: str = "fallback",
    count_attempt: bool = False,
) -> None:
    """Record one entry as stored (:class:`StoredMark` says what each argument means)."""
    mark_entries_stored(
        session,
        [StoredMark(entry_id, article_id, note, note_class, count_attempt)],
    )


def mark_entries_stored(session: Session, marks: Sequence[StoredMark]) -> None:
    """Record entries as stored, in the caller's transaction: one ``executemany`` for a
    batch's entries (pipelined by psycopg into one round trip on PostgreSQL), where one
    statement per entry cost a round trip each inside the batch's transaction."""
    if not marks:
        return
    now = utcnow()
    run_core(
        session,
        _MARK_STORED,
        [
            {
                "entry": mark.entry_id,
                "article_id": mark.article_id,
                "error": mark.note,
                "error_class": None if mark.note is None else mark.note_class,
                "counted": int(mark.count_attempt),
                "updated_at": now,
            }
            for mark in marks
        ],
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


def entry_ids_for_request(
    session: Session, request_id: int, *, pending_only: bool = False
) -> list[int]:
    """The entries linked to a re-crawl request; ``pending_only``: those not yet finished."""
    query = select(Entry.id).where(col(Entry.crawl_request_id) == request_id)
    if pending_only:
        query = query.where(col(Entry.status) == "pending")
    rows = session.exec(query.order_by(col(Entry.id))).all()
    return [int(r) for r in rows if r is not None]


def delete_for_feed(session: Session, feed_id: int) -> None:
    """Forget a removed feed's entries (its stored articles stay)."""
    session.execute(sa.delete(Entry).where(col(Entry.feed_id) == feed_id))


def link_to_request(session: Session, *, entry_ids: Sequence[int], request_id: int) -> None:
    """Hand entries to a re-crawl request: pending again, attempts restarted.

    Attempts restart because an operator's re-crawl is a fresh try, not a crash loop.
    """
    now = utcnow()
    ids = sorted(set(entry_ids))
    for start in range(0, len(ids), 500):
        session.execute(
            sa.update(Entry)
            .where(col(Entry.id).in_(ids[start : start + 500]))
            .values(crawl_request_id=request_id, status="pending", attempts=0, updated_at=now)
        )
