"""Writer of ``feed_polls``: one row per poll, the history read back from them, and
their retention (the one place that deletes polls, besides removing a feed).

The history (last full fetch, 304s since) is what the conditional-GET guard
uses to decide whether a run of 304s should be double-checked. Retention
(:func:`prune_polls`) keeps that history whole: it never deletes a feed's newest
``ok`` poll nor anything after it, however old.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ..models import (
    Feed,
    FeedPoll,
    UTCDateTime,
)
from .sql import table_of, take_lock

OK = "ok"
"""``feed_polls.status`` of a poll that got a full 200 body (parsed, or equal to the last
one): the "last good poll" that retention always keeps."""

PRUNE_LOCK = "feed_polls_prune"
"""The named lock (``locks`` table) each prune batch takes: concurrent runs take turns."""

PRUNE_FEEDS_PER_STEP = 1_000
"""Feeds whose polls one prune statement looks at (a window of feed ids). Each feed costs
the statement two short index probes even when it has nothing to delete, so this bounds
how long a statement of the nothing-to-do prune takes, while keeping the statements of a
whole pass few (10 at 10,000 feeds)."""


def add_poll(session: Session, poll: FeedPoll) -> None:
    session.add(poll)


@dataclass(frozen=True)
class FetchHistory:
    """What the conditional-GET guard needs to know about a feed's recent polls."""

    last_full_fetch_at: datetime | None  # last poll that got a 200 body
    not_modified_since: int  # 304 answers since then


def fetch_history(session: Session, *, feed_id: int) -> FetchHistory:
    """One statement, two probes of ``ix_feed_polls_feed_started`` (feed_id, started_at):
    the newest ``ok`` poll, and the 304s since it.

    One round trip where it was two: a desk's polls are mostly conditional GETs
    answered 304, and each reads this (``pipeline.polling._fetch_feed``).
    """
    polls = table_of(FeedPoll)
    ok = polls.alias("last_ok")  # its own name: never correlated with the count's rows
    last_full = (
        sa.select(ok.c.started_at)
        .where(ok.c.feed_id == feed_id)
        .where(ok.c.status == OK)
        .order_by(ok.c.started_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    not_modified = (
        sa.select(sa.func.count())
        .select_from(polls)
        .where(polls.c.feed_id == feed_id)
        .where(polls.c.status == "not_modified")
        .where(sa.or_(last_full.is_(None), polls.c.started_at > last_full))
        .scalar_subquery()
    )
    row = session.execute(sa.select(last_full.label("last"), not_modified.label("n"))).one()
    return FetchHistory(last_full_fetch_at=row.last, not_modified_since=int(row.n or 0))


def delete_for_feed(session: Session, feed_id: int) -> None:
    """Forget a removed feed's polls."""
    session.execute(sa.delete(FeedPoll).where(col(FeedPoll.feed_id) == feed_id))


def prune_statement(
    *, older_than: datetime, after_feed_id: int, up_to_feed_id: int, limit: int
) -> sa.Delete:
    """The DELETE of one prune batch: at most ``limit`` polls of the feeds with ids in
    (``after_feed_id``, ``up_to_feed_id``] that started before ``older_than`` *and* before
    their feed's newest ``ok`` poll.

    Shaped so that both databases use ``ix_feed_polls_feed_started`` (feed_id, started_at)
    for both of its probes per feed, with no table scan and no new index
    (``tests/integration/test_poll_retention.py`` checks both plans):

    * the ``bounds`` CTE (materialised, so each feed's bound is computed once, not once
      per candidate row) walks the window's feeds by primary key and finds each one's
      newest ``ok`` poll by reading the index backwards from the newest poll; a healthy
      feed has one within about ``INGEST_REVALIDATE_EVERY_POLLS`` polls, since that poll
      is a full GET;
    * the polls to delete are then an index range per feed: ``feed_id = b.feed_id AND
      started_at < b.keep_from``, where ``keep_from`` is the cut-off, or the newest ``ok``
      poll when that is older. A feed that never had an ``ok`` poll keeps nothing older
      than the cut-off.
    """
    polls = table_of(FeedPoll)
    feeds = table_of(Feed)
    newest = polls.alias("newest_ok")
    newest_ok = (
        sa.select(newest.c.started_at)
        .where(newest.c.feed_id == feeds.c.id, newest.c.status == OK)
        .order_by(newest.c.started_at.desc())
        .limit(1)
        .correlate(feeds)
        .scalar_subquery()
    )
    bounds = (
        sa.select(feeds.c.id.label("feed_id"), newest_ok.label("newest_ok"))
        .where(feeds.c.id > after_feed_id, feeds.c.id <= up_to_feed_id)
        # Nested in the DELETE's subquery: a statement that starts with WITH gets no
        # row count from Python's sqlite3 (it counts only statements starting with DELETE).
        .cte("bounds", nesting=True)
        .prefix_with("MATERIALIZED")
    )
    cutoff = sa.literal(older_than, type_=UTCDateTime())
    keep_from = sa.case((bounds.c.newest_ok < cutoff, bounds.c.newest_ok), else_=cutoff)
    doomed = (
        sa.select(polls.c.id)
        .select_from(bounds)
        .join(
            polls,
            sa.and_(polls.c.feed_id == bounds.c.feed_id, polls.c.started_at < keep_from),
        )
        .limit(limit)
    )
    return sa.delete(polls).where(polls.c.id.in_(doomed))


def prune_polls(
    session: Session,
    *,
    older_than: datetime,
    batch_size: int,
    deadline: float | None = None,
) -> int:
    """Delete polls that started before ``older_than``, except each feed's newest ``ok``
    poll and every poll after it; returns how many rows were deleted.

    Why keep those: the newest ``ok`` poll is the feed's last good poll, which operators
    and downstream apps read for feed health, and :func:`fetch_history` (the
    conditional-GET guard) reads exactly that poll and the 304s after it. A feed that has
    failed since before the cut-off therefore keeps its failures back to its last good
    poll; they are few (failing feeds back off, and are disabled after
    ``INGEST_DISABLE_AFTER_DAYS``).

    Works in batches of at most ``batch_size`` rows, each **committed** here, so no
    transaction holds many row locks or a long write lock on SQLite, and a poll being
    recorded never waits for more than one batch. Pass a session with nothing else
    pending. Feeds are visited by id in windows of :data:`PRUNE_FEEDS_PER_STEP`; a window
    is deleted from until a batch comes back short.

    Safe to run twice at once and to repeat: a poll once deletable stays deletable (new
    polls only move a feed's newest ``ok`` later), so two runs delete each row once
    between them (their batches take turns, under the named lock :data:`PRUNE_LOCK`), and a
    second run finds nothing. With ``deadline`` (a
    :func:`time.monotonic` value) it stops after the batch during which the deadline
    passed; the next run goes on where this one left off, in effect, since the windows
    already pruned cost only their probes.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    deleted = 0
    after = 0
    while True:
        window = session.exec(
            select(col(Feed.id))
            .where(col(Feed.id) > after)
            .order_by(col(Feed.id))
            .limit(PRUNE_FEEDS_PER_STEP)
        ).all()
        if not window:
            return deleted
        up_to = int(window[-1] or 0)
        session.commit()
        while True:
            statement = prune_statement(
                older_than=older_than, after_feed_id=after, up_to_feed_id=up_to, limit=batch_size
            )
            # One batch at a time across runs: a second run's DELETE starts after the
            # first's batch committed, so it picks other rows, and two batches never lock
            # the same rows in different orders (a deadlock on PostgreSQL). FOR UPDATE
            # SKIP LOCKED would do as well (the first prune at 10,000 feeds took 89.9 s
            # with it, 88.9 s with this lock: bench/polls_retention.py, 2026-12-04) but
            # writes a lock into every row before deleting it; this is one upsert a batch.
            take_lock(session, PRUNE_LOCK)
            result = session.execute(statement)
            session.commit()
            batch = int(getattr(result, "rowcount", 0) or 0)
            deleted += batch
            if deadline is not None and time.monotonic() >= deadline:
                return deleted
            if batch < batch_size:
                break
        after = up_to
