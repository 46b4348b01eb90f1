"""Orchestration: one function per unit of work, joining the pure core to the edges.

No Celery here: :mod:`worker.tasks` wraps these functions, and the demo and
tests can call them directly. Each function loads what it needs, calls the pure
stages (feeds, extract, urls, classify, dedup), and persists the outcome
through :mod:`worker.store`, recording failures on the feed or entry row rather
than losing them.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlmodel import Session

from . import dedup, schedule, store
from .classify import classify
from .db import session_scope
from .errors import ERROR_TEXT_MAX_CHARS, IngestError, PermanentError, TransientError
from .extract import ExtractedArticle, extract_article, from_feed_summary
from .feeds import body_hash, parse_feed, stale_validators
from .fetch import (
    FEED_ACCEPT,
    FEED_CONTENT_TYPES,
    HTML_CONTENT_TYPES,
    Fetcher,
    FetchPolicy,
    FetchResult,
    parse_retry_after,
)
from .fetch import decode_body as decode_html
from .models import Feed, FeedPoll, utcnow
from .politeness import is_throttle
from .settings import Settings, get_settings
from .urls import InvalidURLError, canonicalize_url

log = structlog.get_logger(__name__)

FEED_LEASE_SECONDS = 300.0


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy.from_settings(settings)


def poll_bounds(settings: Settings, feed: Feed) -> schedule.PollBounds:
    base = float(feed.poll_interval_seconds or settings.poll_interval_seconds)
    return schedule.PollBounds(
        base_seconds=base,
        min_seconds=float(min(settings.min_poll_interval_seconds, base)),
        max_seconds=float(max(settings.max_poll_interval_seconds, base)),
        max_backoff_seconds=float(settings.max_backoff_seconds),
        jitter_fraction=settings.poll_jitter_fraction,
    )


FEED_EXPECT = FEED_CONTENT_TYPES + HTML_CONTENT_TYPES


@dataclass
class PollOutcome:
    feed_id: int
    status: str  # ok | unchanged | not_modified | error | throttled | skipped
    http_status: int | None = None
    entries_seen: int = 0
    new_entry_ids: list[int] = field(default_factory=list)
    error: str | None = None
    conditional_get_disabled: str | None = None  # why this poll stopped trusting validators


@dataclass(frozen=True)
class _FeedSnapshot:
    """What a poll needs from the feed row, read before the (slow) fetch."""

    url: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    conditional: bool
    history: store.FetchHistory


def _fetch_feed(
    fetcher: Fetcher, snap: _FeedSnapshot, *, settings: Settings, now: datetime
) -> tuple[FetchResult, str | None]:
    """GET the feed, double-checking a 304 when revalidation is due.

    Returns the result to use and, when the server's 304 proved wrong (an
    unconditional GET right after it returned a different body), the reason
    to turn conditional GET off for this feed.
    """
    result = fetcher.get(
        snap.url,
        accept=FEED_ACCEPT,
        etag=snap.etag if snap.conditional else None,
        last_modified=snap.last_modified if snap.conditional else None,
        expect=FEED_EXPECT,
    )
    if not (result.not_modified and snap.conditional):
        return result, None
    if not schedule.revalidation_due(
        not_modified_since=snap.history.not_modified_since,
        last_full_fetch_at=snap.history.last_full_fetch_at,
        now=now,
        every_polls=settings.revalidate_every_polls,
        max_age_seconds=float(settings.max_poll_interval_seconds),
    ):
        return result, None
    full = fetcher.get(snap.url, accept=FEED_ACCEPT, expect=FEED_EXPECT)
    if full.not_modified or snap.body_hash is None:
        return full, None
    if body_hash(full.body) != snap.body_hash:
        return full, "not_modified_while_changed"
    return full, None


def poll_feed(
    *, feed_id: int, fetcher: Fetcher, settings: Settings, owner: str, force: bool = False
) -> PollOutcome:
    """Fetch and parse one feed, record the poll, and insert its new entries.

    Failures never raise: they are written onto the feed (error counters,
    state, backoff) and into ``feed_polls``, because a feed that fails is
    retried by the schedule, not by the task queue. A 304, or a 200 whose
    body hash equals the last one, skips parsing; ``force`` skips both
    shortcuts. When our own rate limiter (not the server) holds the poll
    back, the feed is simply rescheduled: that is not the feed's failure.
    """
    now = utcnow()
    with session_scope() as session:
        if not store.acquire_feed_lease(
            session, feed_id=feed_id, owner=owner, now=now, lease_seconds=FEED_LEASE_SECONDS
        ):
            return PollOutcome(feed_id=feed_id, status="skipped", error="lease held elsewhere")
        feed = session.get(Feed, feed_id)
        if feed is None:
            return PollOutcome(feed_id=feed_id, status="skipped", error="no such feed")
        snap = _FeedSnapshot(
            url=feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            body_hash=feed.last_body_hash,
            conditional=feed.conditional_get
            and not force
            and bool(feed.etag or feed.last_modified),
            history=store.fetch_history(session, feed_id=feed_id),
        )

    started = time.monotonic()
    poll = FeedPoll(feed_id=feed_id, started_at=now, status="error")
    outcome = PollOutcome(feed_id=feed_id, status="error")
    try:
        result, stale = _fetch_feed(fetcher, snap, settings=settings, now=now)
        poll.http_status = outcome.http_status = result.status
        poll.final_url = result.final_url
        parsed = None
        new_hash: str | None = None
        if not result.not_modified:
            new_hash = body_hash(result.body)
            stale = stale or stale_validators(
                stored_hash=snap.body_hash,
                new_hash=new_hash,
                stored_etag=snap.etag,
                new_etag=result.headers.get("etag"),
                stored_last_modified=snap.last_modified,
                new_last_modified=result.headers.get("last-modified"),
            )
            if force or new_hash != snap.body_hash:
                parsed = parse_feed(
                    result.body, base_url=result.final_url, response_headers=result.headers
                )
    except IngestError as exc:
        if is_throttle(exc):
            return _reschedule_throttled(feed_id, exc, settings=settings, owner=owner, now=now)
        poll.error = outcome.error = str(exc)
        poll.error_class = exc.error_class
        poll.http_status = outcome.http_status = exc.status
        with session_scope() as session:
            feed = session.get(Feed, feed_id)
            assert feed is not None
            _record_failure(feed, exc, settings=settings, now=now)
            _close_poll(session, feed, poll, started=started, owner=owner)
        log.warning(
            "feed_poll_failed",
            feed_id=feed_id,
            url=snap.url,
            error=str(exc),
            error_class=exc.error_class,
        )
        return outcome

    with session_scope() as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        if result.not_modified:
            poll.status = outcome.status = "not_modified"
        else:
            # A 200 is a full fetch even when the body was unchanged: it is what
            # the conditional-GET guard counts from (store.fetch_history).
            poll.status = outcome.status = "ok"
            feed.etag = result.headers.get("etag")
            feed.last_modified = result.headers.get("last-modified")
            feed.last_body_hash = new_hash
        if parsed is None and not result.not_modified:
            outcome.status = "unchanged"
        if parsed is not None:
            poll.bozo = parsed.bozo
            poll.bozo_message = parsed.bozo_message
            poll.entries_seen = outcome.entries_seen = len(parsed.items)
            new_ids = store.add_entries(session, feed_id=feed_id, items=parsed.items)
            poll.entries_new = len(new_ids)
            outcome.new_entry_ids = new_ids
            feed.title = parsed.title or feed.title
            feed.site_url = parsed.site_url or feed.site_url
            feed.ttl_seconds = parsed.ttl_seconds
            dates = [i.published_at for i in parsed.items if i.published_at is not None]
            interval = schedule.observed_interval(dates, now=now)
            if interval is not None:
                feed.publish_interval_seconds = interval
        if stale and feed.conditional_get:
            feed.conditional_get = False
            outcome.conditional_get_disabled = stale
            log.warning("conditional_get_disabled", feed_id=feed_id, url=snap.url, reason=stale)
        if result.permanent_redirect_to and result.permanent_redirect_to != feed.url:
            _move_feed(session, feed, result.permanent_redirect_to)
        bounds = poll_bounds(settings, feed)
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
        _close_poll(session, feed, poll, started=started, owner=owner)
    log.info(
        "feed_polled",
        feed_id=feed_id,
        status=outcome.status,
        http_status=outcome.http_status,
        entries_seen=outcome.entries_seen,
        entries_new=len(outcome.new_entry_ids),
    )
    return outcome


def _close_poll(
    session: Session, feed: Feed, poll: FeedPoll, *, started: float, owner: str
) -> None:
    """Write the feed's new state and the poll row, and give up the feed's lease."""
    poll.finished_at = utcnow()
    poll.duration_ms = int((time.monotonic() - started) * 1000)
    session.add(feed)
    session.add(poll)
    assert feed.id is not None
    store.release_feed_lease(session, feed_id=feed.id, owner=owner)


def _move_feed(session: Session, feed: Feed, target: str) -> None:
    """Follow a permanent redirect (301/308 on every hop) by updating the stored URL."""
    assert feed.id is not None
    if store.feed_url_taken(session, url=target, feed_id=feed.id):
        log.warning("feed_redirect_collides", feed_id=feed.id, url=feed.url, target=target)
        return
    log.info("feed_moved", feed_id=feed.id, old_url=feed.url, new_url=target)
    feed.url = target


def _reschedule_throttled(
    feed_id: int, exc: IngestError, *, settings: Settings, owner: str, now: datetime
) -> PollOutcome:
    with session_scope() as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        bounds = poll_bounds(settings, feed)
        wait = max(exc.retry_after or 0.0, 1.0)
        feed.next_poll_at = schedule.with_jitter(now, wait, bounds)
        session.add(feed)
        store.release_feed_lease(session, feed_id=feed_id, owner=owner)
    log.info("feed_poll_throttled", feed_id=feed_id, wait_seconds=wait, reason=str(exc))
    return PollOutcome(feed_id=feed_id, status="throttled", error=str(exc))


def _record_failure(feed: Feed, exc: IngestError, *, settings: Settings, now: datetime) -> None:
    """Count the failure, move the feed along healthy → failing → disabled, back off.

    410 Gone disables at once; otherwise a feed is disabled after failing
    without a single success for ``disable_after_days``. Backoff doubles per
    consecutive error up to ``max_backoff_seconds`` and never undercuts a
    Retry-After. ``store.enable_feed`` is the way back.
    """
    feed.error_count += 1
    feed.first_failure_at = feed.first_failure_at or now
    feed.last_error = str(exc)[:ERROR_TEXT_MAX_CHARS]
    feed.last_error_class = exc.error_class
    feed.last_http_status = exc.status
    feed.last_polled_at = now
    failing_for = now - store.as_utc(feed.first_failure_at)
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
    bounds = poll_bounds(settings, feed)
    wait = schedule.failure_interval(
        bounds, consecutive_errors=feed.error_count, retry_after=exc.retry_after
    )
    feed.next_poll_at = schedule.with_jitter(now, wait, bounds)
    feed.updated_at = utcnow()


@dataclass
class EntryOutcome:
    entry_id: int
    status: str  # stored | failed | skipped
    article_id: int | None = None
    action: str | None = None
    extraction_method: str | None = None
    error: str | None = None
    is_ukraine_security: bool | None = None


KNOWN_URL_NOTE = "URL fetched recently for another entry; linked without fetching again"


def _recently_fetched(session: Session, url: str, settings: Settings) -> tuple[int, bool] | None:
    """The article already stored from ``url`` within ``refetch_after_seconds``, if any.

    The same story linked from a second feed minutes later is the common case
    of a repeat: fetching and extracting it again costs a request to the
    publisher (and a politeness token) and a full extraction for no new text.
    An operator's forced re-crawl, or an entry seen after the window, fetches.
    """
    if settings.refetch_after_seconds <= 0:
        return None
    try:
        canonical = canonicalize_url(url)
    except InvalidURLError:
        return None  # the fetch path records the bad URL
    since = utcnow() - timedelta(seconds=settings.refetch_after_seconds)
    return store.recently_fetched_article(session, canonical_url=canonical, since=since)


@dataclass(frozen=True)
class EntryJob:
    """What processing an entry needs from its row, read before the (slow) fetch."""

    entry_id: int
    url: str
    title: str | None
    summary: str | None
    published_at: datetime | None
    author: str | None
    feed_id: int | None
    guid: str | None


PageFuture = Future[FetchResult]


def _fallback_or_fail(job: EntryJob, exc: IngestError) -> tuple[ExtractedArticle | None, str]:
    article = from_feed_summary(title=job.title, summary=job.summary, published_at=job.published_at)
    return article, f"page unavailable ({exc}); used feed summary"


def begin_entry(
    *, entry_id: int, settings: Settings, force: bool = False, count_attempt: bool = False
) -> EntryJob | EntryOutcome:
    """Load the entry; finish it here when there is nothing to fetch.

    Returns the outcome for an entry that is gone, already stored, or links
    to a page stored moments ago (linked to it, see :func:`_recently_fetched`);
    otherwise the :class:`EntryJob` to fetch and extract.
    """
    with session_scope() as session:
        entry = store.entry_to_process(session, entry_id)
        if entry is None:
            return EntryOutcome(entry_id=entry_id, status="skipped", error="no such entry")
        if entry.status == "stored" and not force:
            return EntryOutcome(entry_id=entry_id, status="skipped", article_id=entry.article_id)
        known = None if force else _recently_fetched(session, entry.url, settings)
        if known is not None:
            article_id, positive = known
            store.mark_entry_stored(
                session,
                entry_id=entry_id,
                article_id=article_id,
                note=KNOWN_URL_NOTE,
                note_class="known_url",
                count_attempt=count_attempt,
            )
            log.info("entry_linked_known_url", entry_id=entry_id, article_id=article_id)
            return EntryOutcome(
                entry_id=entry_id,
                status="stored",
                article_id=article_id,
                action="known_url",
                is_ukraine_security=positive,
            )
        return EntryJob(
            entry_id=entry_id,
            url=entry.url,
            title=entry.title,
            summary=entry.summary,
            published_at=entry.published_at,
            author=entry.author,
            feed_id=entry.feed_id,
            guid=entry.guid,
        )


def fetch_page(job: EntryJob, *, fetcher: Fetcher, settings: Settings) -> FetchResult:
    return fetcher.get(job.url, expect=HTML_CONTENT_TYPES, check_robots=settings.respect_robots)


class PagePrefetcher:
    """Fetches pages on one background thread, so the next entry's page arrives
    while the current entry is being extracted.

    Why: a fetch is mostly waiting (DNS, connect, the publisher's response,
    the per-host rate limiter's Redis round trip), and a worker process that
    waits holds a CPU slot idle: with one process per core, the benchmark's
    children spent 5-10 % of their time waiting on fetches even from a local
    server, and a real publisher answers in 100 ms-2 s, longer than the
    extraction. One thread is enough to hide that behind the next extraction,
    keeps fetches of a batch sequential (one connection, politeness as
    before), and never shares the HTTP client between two requests at once.

    Made per batch and closed without waiting: a page that never finishes
    arriving ties up only its own thread, until the fetch's total timeout.
    """

    def __init__(self, fetcher: Fetcher, settings: Settings) -> None:
        self._fetcher = fetcher
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")

    def submit(self, job: EntryJob) -> PageFuture:
        return self._executor.submit(
            fetch_page, job, fetcher=self._fetcher, settings=self._settings
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PagePrefetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def process_entry(
    *,
    entry_id: int,
    fetcher: Fetcher,
    settings: Settings,
    force: bool = False,
    final_attempt: bool = False,
    count_attempt: bool = False,
    begun: EntryJob | EntryOutcome | None = None,
    page: PageFuture | None = None,
) -> EntryOutcome:
    """Fetch, extract, canonicalise, classify, dedup and store one feed entry.

    A :class:`TransientError` propagates (the task retries it) unless this is
    the last attempt, when the feed's summary is stored instead so the story
    is not lost; a permanent failure with no usable summary marks the entry
    ``failed`` with the reason. ``count_attempt``: this attempt was not counted
    when it started (a first delivery), so the final write counts it.
    ``begun`` and ``page``: the entry was already loaded by :func:`begin_entry`
    and its page is being fetched by a :class:`PagePrefetcher`.
    """
    if begun is None:
        begun = begin_entry(
            entry_id=entry_id, settings=settings, force=force, count_attempt=count_attempt
        )
    if isinstance(begun, EntryOutcome):
        return begun
    job = begun

    note: str | None = None
    final_url = job.url
    extracted: ExtractedArticle | None
    try:
        result = (
            page.result()
            if page is not None
            else fetch_page(job, fetcher=fetcher, settings=settings)
        )
        final_url = result.final_url
        text, _encoding = decode_html(result.body, header_charset=result.charset)
        extracted = extract_article(text, url=final_url)
        if extracted is None or len(extracted.body) < settings.min_body_chars:
            fallback = from_feed_summary(
                title=job.title, summary=job.summary, published_at=job.published_at
            )
            if fallback is not None and (
                extracted is None or len(fallback.body) > len(extracted.body)
            ):
                extracted, note = fallback, "extraction empty or too short; used feed summary"
    except TransientError as exc:
        if not final_attempt:
            raise
        extracted, note = _fallback_or_fail(job, exc)
        if extracted is None:
            return _fail(entry_id, exc, count_attempt=count_attempt)
    except PermanentError as exc:
        extracted, note = _fallback_or_fail(job, exc)
        if extracted is None:
            return _fail(entry_id, exc, count_attempt=count_attempt)
    if extracted is None:
        return _fail(
            entry_id,
            PermanentError(
                "no article text and no feed summary",
                url=job.url,
                error_class="extraction_failed",
            ),
            count_attempt=count_attempt,
        )

    try:
        canonical = canonicalize_url(final_url, page_canonical=extracted.canonical_url)
    except InvalidURLError as exc:
        return _fail(
            entry_id,
            PermanentError(str(exc), url=final_url, error_class="bad_url"),
            count_attempt=count_attempt,
        )
    title = (extracted.title or job.title or "").strip() or canonical
    published_at = extracted.published_at or job.published_at
    classification = classify(
        title=title, body=extracted.body, language=extracted.language, method=settings.classifier
    )
    # Undated items still get dated title keys (from the fetch time), so a
    # re-titled copy of an undated wire story can find them.
    fingerprint = dedup.fingerprint(
        title=title, body=extracted.body, published_at=published_at or utcnow()
    )
    record = store.ArticleRecord(
        url=job.url,
        canonical_url=canonical,
        feed_id=job.feed_id,
        guid=job.guid,
        title=title,
        body=extracted.body,
        summary=job.summary,
        author=extracted.author or job.author,
        published_at=published_at,
        language=extracted.language,
        extraction_method=extracted.method,
        fingerprint=fingerprint,
        classification=classification,
    )
    with session_scope() as session:
        saved = store.save_article(
            session, record, window=timedelta(days=settings.dedup_window_days)
        )
        store.mark_entry_stored(
            session,
            entry_id=entry_id,
            article_id=saved.article_id,
            note=note,
            count_attempt=count_attempt,
        )
    log.info(
        "article_stored",
        entry_id=entry_id,
        article_id=saved.article_id,
        story_id=saved.story_id,
        action=saved.action,
        url=canonical,
        is_ukraine_security=classification.is_ukraine_security,
        score=classification.score,
    )
    return EntryOutcome(
        entry_id=entry_id,
        status="stored",
        article_id=saved.article_id,
        action=saved.action,
        extraction_method=extracted.method,
        error=note,
        is_ukraine_security=classification.is_ukraine_security,
    )


def _fail(entry_id: int, exc: IngestError, *, count_attempt: bool = False) -> EntryOutcome:
    with session_scope() as session:
        store.mark_entry_failed(
            session,
            entry_id=entry_id,
            error=str(exc),
            error_class=exc.error_class,
            http_status=exc.status,
            count_attempt=count_attempt,
        )
    log.warning("entry_failed", entry_id=entry_id, error=str(exc), error_class=exc.error_class)
    return EntryOutcome(entry_id=entry_id, status="failed", error=str(exc))


def reclassify_articles(article_ids: list[int], *, method: str | None = None) -> int:
    """Re-run the classifier over stored articles; returns how many changed.

    ``method`` defaults to the configured one (``INGEST_CLASSIFIER``).
    """
    method = method or get_settings().classifier
    changed = 0
    with session_scope() as session:
        from .models import Article

        for article_id in article_ids:
            article = session.get(Article, article_id)
            if article is None:
                continue
            result = classify(
                title=article.title, body=article.body, language=article.language, method=method
            )
            if store.update_classification(session, article_id=article_id, classification=result):
                changed += 1
    return changed
