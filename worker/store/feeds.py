"""Writer of ``feeds``: the operator's feed list, the beat's claims and leases,
and each feed's health.

A poll's outcome is written here as one state machine (healthy → failing →
disabled, with backoff), so the rules for when a feed is retried or given up
live in one place, next to the columns they change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from .. import schedule
from ..errors import ERROR_TEXT_MAX_CHARS, IngestError
from ..feeds import ParsedFeed
from ..fetch import FetchResult, parse_retry_after
from ..models import (
    Feed,
    FeedPoll,
    utcnow,
)
from ..settings import Settings
from . import articles, entries, polls
from .sql import as_utc, run_core, table_of

log = structlog.get_logger(__name__)


class FeedUrlTakenError(ValueError):
    """Another feed already polls this URL (``feeds.url`` is unique): updating a feed to
    it would fail in the database."""

    def __init__(self, url: str, owner: str) -> None:
        super().__init__(f"feed {owner!r} already has the URL {url!r}")
        self.url, self.owner = url, owner


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
    """Create or update a feed by name (or URL); returns ``(feed, created)``. Raises
    :class:`FeedUrlTakenError` when the feed of that name would take another's URL."""
    feed = session.exec(select(Feed).where(col(Feed.name) == name)).first()
    if feed is None:
        feed = session.exec(select(Feed).where(col(Feed.url) == url)).first()
    elif feed.url != url:
        owner = session.exec(select(Feed).where(col(Feed.url) == url)).first()
        if owner is not None:
            raise FeedUrlTakenError(url, owner.name)
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
    itself sets the real next time. The statement is :func:`due_claim_statement`.
    """
    statement = due_claim_statement(
        session.get_bind().dialect.name, now=now, limit=limit, claim_seconds=claim_seconds
    )
    claimed = session.execute(statement.execution_options(synchronize_session=False))
    return sorted(int(i) for i in claimed.scalars().all())


def due_claim_statement(
    dialect: str, *, now: datetime, limit: int, claim_seconds: float
) -> sa.Update:
    """One ``UPDATE … RETURNING id`` that claims up to ``limit`` due feeds, oldest first.

    One statement, not a SELECT followed by an UPDATE: Python's sqlite3 runs a
    SELECT outside any transaction, so two ticks on SQLite could both read a feed
    as due before either pushed it, and both would poll it. One statement holds
    SQLite's write lock from the read to the write. On PostgreSQL the due rows are
    locked with ``SKIP LOCKED``, so a concurrent tick claims the next feeds instead
    of the same ones. The due query walks the ``ix_feeds_due`` index and the update
    finds each row by primary key, so a claim costs the same with 10,000 feeds or
    1,000,000 (``tests/integration/test_due_claims.py`` checks both plans). Only
    ``next_poll_at`` changes, which the change-log trigger ignores.
    """
    due = (
        sa.select(col(Feed.id))
        .where(col(Feed.enabled).is_(True))
        .where(col(Feed.next_poll_at) <= now)
        .order_by(col(Feed.next_poll_at))
        .limit(limit)
    )
    if dialect == "postgresql":
        # ARRAY(...) runs the due query once, then each id is found by primary key.
        # With IN (...) PostgreSQL hash-joins the ids against a scan of the whole
        # table: 15 ms of a 41 ms claim at 100,000 feeds, and growing with them.
        match = col(Feed.id) == sa.any_(
            sa.func.array(due.with_for_update(skip_locked=True).scalar_subquery())
        )
    else:
        match = col(Feed.id).in_(due.scalar_subquery())  # SQLite probes by rowid
    return (
        sa.update(Feed)
        .where(match)
        .values(next_poll_at=now + timedelta(seconds=claim_seconds))
        .returning(col(Feed.id))
    )


def _lease_statement(*, feed_id: int, owner: str, now: datetime, lease_seconds: float) -> Any:
    """The ``UPDATE`` that takes a feed's lease: free, expired, or already this owner's."""
    feed = table_of(Feed)
    return (
        sa.update(feed)
        .where(feed.c.id == feed_id)
        .where(
            sa.or_(
                feed.c.lease_until.is_(None),
                feed.c.lease_until < now,
                feed.c.lease_owner == owner,
            )
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
    )


def acquire_feed_lease(
    session: Session, *, feed_id: int, owner: str, now: datetime, lease_seconds: float
) -> bool:
    """Take the per-feed lease; False when another worker is polling this feed.

    The owner is the task id, so a redelivered copy of the same task (after a
    worker died) may take its own lease again.
    """
    result = session.execute(
        _lease_statement(feed_id=feed_id, owner=owner, now=now, lease_seconds=lease_seconds)
    )
    return bool(getattr(result, "rowcount", 0))


def release_feed_lease(session: Session, *, feed_id: int, owner: str) -> None:
    session.execute(
        sa.update(Feed)
        .where(col(Feed.id) == feed_id)
        .where(col(Feed.lease_owner) == owner)
        .values(lease_owner=None, lease_until=None)
    )


def release_feeds_after_restore(session: Session, *, now: datetime) -> int:
    """Drop every feed lease and make every enabled feed due now; how many are due.

    After a restore the claims and leases in the table belong to a deployment that is
    gone: the tasks that held them will never finish, and a feed claimed when the backup
    was taken would wait out its claim (``INGEST_FEED_LEASE_SECONDS``) before anyone polls it.
    The database is also behind by the time since the backup, and a poll is what finds
    the items published meanwhile, so every feed is polled at once (beat's batches and
    the per-host limits pace it, as on a first start). Scheduling columns only: the
    change log does not record them.
    """
    session.execute(
        sa.update(Feed)
        .where(col(Feed.lease_owner).is_not(None) | col(Feed.lease_until).is_not(None))
        .values(lease_owner=None, lease_until=None)
    )
    session.execute(
        sa.update(Feed)
        .where(col(Feed.enabled).is_(True))
        .where(col(Feed.next_poll_at).is_(None) | (col(Feed.next_poll_at) > now))
        .values(next_poll_at=now)
    )
    due = session.execute(
        sa.select(sa.func.count()).select_from(Feed).where(col(Feed.enabled).is_(True))
    ).scalar_one()
    return int(due)


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
    assert feed.id is not None
    polls.delete_for_feed(session, feed.id)
    entries.delete_for_feed(session, feed.id)
    articles.detach_from_feed(session, feed.id)
    session.execute(sa.delete(Feed).where(col(Feed.id) == feed.id))
    return True


# A poll's outcome, written onto the feed row: the success/failure state machine.


@dataclass(frozen=True)
class PollTarget:
    """What a poll needs from the feed row, read before the (slow) fetch."""

    url: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    conditional: bool
    history: polls.FetchHistory | None  # read only for a conditional GET, which needs it


def start_poll(
    session: Session, *, feed_id: int, owner: str, now: datetime, lease_seconds: float, force: bool
) -> PollTarget | str:
    """Take the feed's lease and read what the poll needs; or say why not to poll.

    One ``UPDATE … RETURNING`` takes the lease and reads the feed's URL and
    validators (it was an update and a select), and the poll history is read only
    when the GET will be conditional: nothing else looks at it
    (``pipeline.polling._fetch_feed``). Per poll that is one statement where it was
    four for a feed without validators, as every new feed is (``bench/profile_poll.py``).
    """
    feed = table_of(Feed)
    taken = run_core(
        session,
        _lease_statement(
            feed_id=feed_id, owner=owner, now=now, lease_seconds=lease_seconds
        ).returning(
            feed.c.url,
            feed.c.etag,
            feed.c.last_modified,
            feed.c.last_body_hash,
            feed.c.conditional_get,
        ),
    ).one_or_none()
    if taken is None:
        exists = session.execute(sa.select(feed.c.id).where(feed.c.id == feed_id)).first()
        return "lease held elsewhere" if exists is not None else "no such feed"
    url, etag, last_modified, body_hash, conditional_get = taken
    conditional = bool(conditional_get) and not force and bool(etag or last_modified)
    return PollTarget(
        url=url,
        etag=etag,
        last_modified=last_modified,
        body_hash=body_hash,
        conditional=conditional,
        history=polls.fetch_history(session, feed_id=feed_id) if conditional else None,
    )


def record_poll_success(
    session: Session,
    *,
    feed_id: int,
    owner: str,
    poll: FeedPoll,
    started: float,
    result: FetchResult,
    new_hash: str | None,
    parsed: ParsedFeed | None,
    stale: str | None,
    settings: Settings,
    now: datetime,
) -> tuple[list[int], str | None]:
    """Write a poll that got an answer: validators, new entries, schedule, health reset.

    Returns the new entry ids and, when this poll proved the server's 304s
    wrong, why conditional GET was turned off for the feed.
    """
    feed = session.get(Feed, feed_id)
    assert feed is not None
    new_ids: list[int] = []
    if not result.not_modified:
        # A 200 is a full fetch even when the body was unchanged: it is what
        # the conditional-GET guard counts from (polls.fetch_history).
        feed.etag = result.headers.get("etag")
        feed.last_modified = result.headers.get("last-modified")
        feed.last_body_hash = new_hash
    if parsed is not None:
        # Not flushed first: the feed's row is written once, at the end, lease and all.
        with session.no_autoflush:
            new_ids = entries.add_entries(session, feed_id=feed_id, items=parsed.items)
        poll.entries_new = len(new_ids)
        feed.title = parsed.title or feed.title
        feed.site_url = parsed.site_url or feed.site_url
        feed.ttl_seconds = parsed.ttl_seconds
        dates = [i.published_at for i in parsed.items if i.published_at is not None]
        interval = schedule.observed_interval(dates, now=now)
        if interval is not None:
            feed.publish_interval_seconds = interval
    disabled_because = None
    if stale and feed.conditional_get:
        feed.conditional_get = False
        disabled_because = stale
        log.warning("conditional_get_disabled", feed_id=feed_id, url=feed.url, reason=stale)
    if result.permanent_redirect_to and result.permanent_redirect_to != feed.url:
        _move_feed(session, feed, result.permanent_redirect_to)
    bounds = schedule.bounds_for(settings, feed.poll_interval_seconds)
    server_min = schedule.server_minimum(
        cache_control=result.headers.get("cache-control"),
        ttl_seconds=float(feed.ttl_seconds) if feed.ttl_seconds else None,
        retry_after=parse_retry_after(result.headers.get("retry-after")),
    )
    wait = schedule.success_interval(
        bounds,
        observed_publish_interval=feed.publish_interval_seconds,
        server_min_seconds=server_min,
    )
    feed.next_poll_at = schedule.with_jitter(now, wait, bounds)
    feed.last_polled_at = now
    feed.last_success_at = now
    feed.last_http_status = result.status
    feed.error_count = 0
    feed.first_failure_at = None
    feed.last_error = None
    feed.last_error_class = None
    feed.state = "healthy" if feed.enabled else feed.state
    feed.updated_at = utcnow()
    _finish_poll(session, feed, poll, owner=owner, started=started)
    return new_ids, disabled_because


def record_poll_failure(
    session: Session,
    *,
    feed_id: int,
    owner: str,
    poll: FeedPoll,
    started: float,
    exc: IngestError,
    settings: Settings,
    now: datetime,
) -> None:
    """Count the failure, move the feed along healthy → failing → disabled, back off.

    410 Gone disables at once; otherwise a feed is disabled after failing
    without a single success for ``disable_after_days``. Backoff doubles per
    consecutive error up to ``max_backoff_seconds`` and never undercuts a
    Retry-After. :func:`enable_feed` is the way back.
    """
    feed = session.get(Feed, feed_id)
    assert feed is not None
    feed.error_count += 1
    feed.first_failure_at = feed.first_failure_at or now
    feed.last_error = str(exc)[:ERROR_TEXT_MAX_CHARS]
    feed.last_error_class = exc.error_class
    feed.last_http_status = exc.status
    feed.last_polled_at = now
    failing_for = now - as_utc(feed.first_failure_at)
    previous = feed.state
    if exc.status == 410 or failing_for >= timedelta(days=settings.disable_after_days):
        feed.state = "disabled"
        feed.enabled = False
    elif feed.state != "disabled":
        feed.state = "failing"
    if feed.state != previous:
        log.warning(
            "feed_state_changed",
            feed_id=feed.id,
            url=feed.url,
            state=feed.state,
            previous=previous,
            error_class=exc.error_class,
            error_count=feed.error_count,
        )
    bounds = schedule.bounds_for(settings, feed.poll_interval_seconds)
    wait = schedule.failure_interval(
        bounds, consecutive_errors=feed.error_count, retry_after=exc.retry_after
    )
    feed.next_poll_at = schedule.with_jitter(now, wait, bounds)
    feed.updated_at = utcnow()
    _finish_poll(session, feed, poll, owner=owner, started=started)


def reschedule_throttled(
    session: Session,
    *,
    feed_id: int,
    owner: str,
    retry_after: float | None,
    settings: Settings,
    now: datetime,
) -> float:
    """Poll again when our own rate limiter allows; not the feed's failure, so no
    error is counted. Returns the wait in seconds."""
    feed = session.get(Feed, feed_id)
    assert feed is not None
    bounds = schedule.bounds_for(settings, feed.poll_interval_seconds)
    wait = max(retry_after or 0.0, 1.0)
    feed.next_poll_at = schedule.with_jitter(now, wait, bounds)
    _give_up_lease(feed, owner=owner)
    session.add(feed)
    return wait


def _finish_poll(
    session: Session, feed: Feed, poll: FeedPoll, *, owner: str, started: float
) -> None:
    """Write the feed's new state and the poll row, and give up the feed's lease.

    ``started``: :func:`time.monotonic` when the poll began, for its duration.
    """
    poll.finished_at = utcnow()
    poll.duration_ms = int((time.monotonic() - started) * 1000)
    _give_up_lease(feed, owner=owner)
    session.add(feed)
    polls.add_poll(session, poll)


def _give_up_lease(feed: Feed, *, owner: str) -> None:
    """Release the feed's lease in the same ``UPDATE`` as the feed's new state, not in one
    of its own.

    Each lease column is set to a ``CASE`` on the row's current owner, evaluated by the
    database when the row is written, so a lease that expired during a slow poll and was
    taken by another worker stays theirs, as the separate
    ``UPDATE … WHERE lease_owner = :owner`` (:func:`release_feed_lease`) guaranteed.
    """
    ours = col(Feed.lease_owner) == owner
    feed.lease_owner = sa.case((ours, sa.null()), else_=col(Feed.lease_owner))  # type: ignore[assignment]
    feed.lease_until = sa.case((ours, sa.null()), else_=col(Feed.lease_until))  # type: ignore[assignment]


def _move_feed(session: Session, feed: Feed, target: str) -> None:
    """Follow a permanent redirect (301/308 on every hop) by updating the stored URL."""
    assert feed.id is not None
    if feed_url_taken(session, url=target, feed_id=feed.id):
        log.warning("feed_redirect_collides", feed_id=feed.id, url=feed.url, target=target)
        return
    log.info("feed_moved", feed_id=feed.id, old_url=feed.url, new_url=target)
    feed.url = target
