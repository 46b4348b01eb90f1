"""Polling one feed: fetch it (conditionally), parse it, and hand the outcome to
the feed's writer (:mod:`worker.store.feeds`), which records the poll, the new
entries and the feed's health.

Failures never raise: a feed that fails is retried by its schedule (with
backoff), not by the task queue, so one bad feed never blocks the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from .. import schedule, store
from ..db import session_scope
from ..errors import IngestError
from ..feeds import ParsedFeed, body_hash, parse_feed, stale_validators
from ..fetch import (
    FEED_ACCEPT,
    FEED_CONTENT_TYPES,
    HTML_CONTENT_TYPES,
    Fetcher,
    FetchPolicy,
    FetchResult,
)
from ..models import FeedPoll, utcnow
from ..politeness import is_throttle
from ..settings import Settings

log = structlog.get_logger(__name__)

FEED_LEASE_SECONDS = 300.0
"""The default of ``INGEST_FEED_LEASE_SECONDS``: how long a poll may hold its feed, and
how far beat pushes a claimed feed."""

FEED_EXPECT = FEED_CONTENT_TYPES + HTML_CONTENT_TYPES


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy.from_settings(settings)


@dataclass
class PollOutcome:
    feed_id: int
    status: str  # ok | unchanged | not_modified | error | throttled | skipped
    http_status: int | None = None
    entries_seen: int = 0
    new_entry_ids: list[int] = field(default_factory=list)
    error: str | None = None
    conditional_get_disabled: str | None = None  # why this poll stopped trusting validators


@dataclass
class DueClaim:
    """What one beat tick claimed: the feeds to poll, in how many batches, and how long
    the claims took (the tick's log line reports it)."""

    feed_ids: list[int]
    claims: int
    claim_ms: float


def claim_due_feeds(*, settings: Settings, now: datetime) -> DueClaim:
    """Claim the feeds due at ``now``: up to ``due_claims_per_tick`` batches of
    ``due_batch_size``, stopping at the first batch that comes back short.

    One batch per tick capped polling at ``due_batch_size / beat_interval_seconds``
    (500 / 60 s = 8.3 polls/s at the defaults) however many feeds were due: 10,000
    feeds at 5 to 30 minutes need ~10/s, and the backlog only grew
    (docs/scale-feeds.md). Claiming again while whole batches come back lets a
    tick catch up, and the cap per tick still bounds how many polls one tick can
    put on the queue after an outage. Each batch commits on its own, so a
    concurrent tick (two beats by mistake, or a slow tick overlapping the next)
    skips what this one claimed, and a crash mid-tick loses no more than
    ``feed_lease_seconds`` of one batch's polling.
    """
    started = time.perf_counter()
    feed_ids: list[int] = []
    claims = 0
    while claims < settings.due_claims_per_tick:
        with session_scope() as session:
            batch = store.due_feed_ids(
                session,
                now=now,
                limit=settings.due_batch_size,
                claim_seconds=settings.feed_lease_seconds,
            )
        claims += 1
        feed_ids += batch
        if len(batch) < settings.due_batch_size:
            break
    return DueClaim(
        feed_ids=feed_ids, claims=claims, claim_ms=(time.perf_counter() - started) * 1000
    )


def _fetch_feed(
    fetcher: Fetcher, target: store.PollTarget, *, settings: Settings, now: datetime
) -> tuple[FetchResult, str | None]:
    """GET the feed, double-checking a 304 when revalidation is due.

    Returns the result to use and, when the server's 304 proved wrong (an
    unconditional GET right after it returned a different body), the reason
    to turn conditional GET off for this feed.
    """
    result = fetcher.get(
        target.url,
        accept=FEED_ACCEPT,
        etag=target.etag if target.conditional else None,
        last_modified=target.last_modified if target.conditional else None,
        expect=FEED_EXPECT,
    )
    history = target.history  # read for a conditional GET only
    if not (result.not_modified and target.conditional) or history is None:
        return result, None
    if not schedule.revalidation_due(
        not_modified_since=history.not_modified_since,
        last_full_fetch_at=history.last_full_fetch_at,
        now=now,
        every_polls=settings.revalidate_every_polls,
        max_age_seconds=float(settings.max_poll_interval_seconds),
    ):
        return result, None
    full = fetcher.get(target.url, accept=FEED_ACCEPT, expect=FEED_EXPECT)
    if full.not_modified or target.body_hash is None:
        return full, None
    if body_hash(full.body) != target.body_hash:
        return full, "not_modified_while_changed"
    return full, None


def poll_feed(
    *, feed_id: int, fetcher: Fetcher, settings: Settings, owner: str, force: bool = False
) -> PollOutcome:
    """Fetch and parse one feed, record the poll, and insert its new entries.

    Failures never raise: they are written onto the feed (error counters,
    state, backoff) and into ``feed_polls``. A 304, or a 200 whose body hash
    equals the last one, skips parsing; ``force`` skips both shortcuts. When
    our own rate limiter (not the server) holds the poll back, the feed is
    simply rescheduled: that is not the feed's failure.
    """
    now = utcnow()
    with session_scope() as session:
        target = store.start_poll(
            session,
            feed_id=feed_id,
            owner=owner,
            now=now,
            lease_seconds=settings.feed_lease_seconds,
            force=force,
        )
    if isinstance(target, str):
        return PollOutcome(feed_id=feed_id, status="skipped", error=target)

    started = time.monotonic()
    poll = FeedPoll(feed_id=feed_id, started_at=now, status="error")
    outcome = PollOutcome(feed_id=feed_id, status="error")
    try:
        result, stale = _fetch_feed(fetcher, target, settings=settings, now=now)
        poll.http_status = outcome.http_status = result.status
        poll.final_url = result.final_url
        parsed: ParsedFeed | None = None
        new_hash: str | None = None
        if not result.not_modified:
            new_hash = body_hash(result.body)
            stale = stale or stale_validators(
                stored_hash=target.body_hash,
                new_hash=new_hash,
                stored_etag=target.etag,
                new_etag=result.headers.get("etag"),
                stored_last_modified=target.last_modified,
                new_last_modified=result.headers.get("last-modified"),
            )
            if force or new_hash != target.body_hash:
                parsed = parse_feed(
                    result.body, base_url=result.final_url, response_headers=result.headers
                )
    except IngestError as exc:
        if is_throttle(exc):
            with session_scope() as session:
                wait = store.reschedule_throttled(
                    session,
                    feed_id=feed_id,
                    owner=owner,
                    retry_after=exc.retry_after,
                    settings=settings,
                    now=now,
                )
            log.info("feed_poll_throttled", feed_id=feed_id, wait_seconds=wait, reason=str(exc))
            return PollOutcome(feed_id=feed_id, status="throttled", error=str(exc))
        poll.error = outcome.error = str(exc)
        poll.error_class = exc.error_class
        poll.http_status = outcome.http_status = exc.status
        with session_scope() as session:
            store.record_poll_failure(
                session,
                feed_id=feed_id,
                owner=owner,
                poll=poll,
                started=started,
                exc=exc,
                settings=settings,
                now=now,
            )
        log.warning(
            "feed_poll_failed",
            feed_id=feed_id,
            url=target.url,
            error=str(exc),
            error_class=exc.error_class,
        )
        return outcome

    if result.not_modified:
        poll.status = outcome.status = "not_modified"
    else:
        poll.status = outcome.status = "ok"
        if parsed is None:
            outcome.status = "unchanged"
    if parsed is not None:
        poll.bozo = parsed.bozo
        poll.bozo_message = parsed.bozo_message
        poll.entries_seen = outcome.entries_seen = len(parsed.items)
    with session_scope() as session:
        new_ids, outcome.conditional_get_disabled = store.record_poll_success(
            session,
            feed_id=feed_id,
            owner=owner,
            poll=poll,
            started=started,
            result=result,
            new_hash=new_hash,
            parsed=parsed,
            stale=stale,
            settings=settings,
            now=now,
        )
    outcome.new_entry_ids = new_ids
    log.info(
        "feed_polled",
        feed_id=feed_id,
        status=outcome.status,
        http_status=outcome.http_status,
        entries_seen=outcome.entries_seen,
        entries_new=len(outcome.new_entry_ids),
    )
    return outcome
