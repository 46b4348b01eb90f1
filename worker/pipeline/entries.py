"""Processing one entry: fetch its page, extract, canonicalise, classify, dedup,
and store the article through :mod:`worker.store`.

No Celery here. What the queue knows about a delivery (forced, last attempt,
counted or not) arrives as one :class:`Delivery` value, so the rules for
retries live in :mod:`worker.tasks` and the rules for an entry live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlmodel import Session

from .. import dedup, store
from ..classify import classify
from ..db import read_scope, session_scope
from ..decoding import decode_body as decode_html
from ..errors import IngestError, PermanentError, TransientError, is_throttle
from ..extract import ExtractedArticle, extract_article, from_feed_summary
from ..fetch import HTML_CONTENT_TYPES, Fetcher, FetchResult
from ..models import utcnow
from ..settings import Settings
from ..urls import InvalidURLError, canonicalize_url

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What the queue's delivery of an entry means for processing it.

    ``force``: an operator's re-crawl; process even a stored entry, fetch even a
    page stored moments ago. ``final_attempt``: no retry follows, so a
    transient failure stores the feed's summary instead of raising.
    ``count_attempt``: the attempt was not counted when it began (a first
    delivery), so the write that stores or fails the entry counts it.
    ``can_defer``: a refusal by our own limiter (the host is paused) is raised
    for the queue to defer, even on the final attempt, instead of falling back.
    """

    force: bool = False
    final_attempt: bool = False
    count_attempt: bool = False
    can_defer: bool = False


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


def _canonical(url: str) -> str | None:
    try:
        return canonicalize_url(url)
    except InvalidURLError:
        return None  # the fetch path records the bad URL


def _recently_fetched(
    session: Session, canonical_urls: Sequence[str], settings: Settings
) -> dict[str, tuple[int, bool]]:
    """The articles already stored at ``canonical_urls`` within ``refetch_after_seconds``,
    by canonical URL.

    The same story linked from a second feed minutes later is the common case
    of a repeat: fetching and extracting it again costs a request to the
    publisher (and a politeness token) and a full extraction for no new text.
    An operator's forced re-crawl, or an entry seen after the window, fetches.
    """
    if settings.refetch_after_seconds <= 0:
        return {}
    since = utcnow() - timedelta(seconds=settings.refetch_after_seconds)
    return store.recently_fetched_articles(session, canonical_urls=canonical_urls, since=since)


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
    *, entry_id: int, settings: Settings, delivery: Delivery = Delivery()
) -> EntryJob | EntryOutcome:
    """:func:`begin_entries` for one entry."""
    return begin_entries(entry_ids=[entry_id], settings=settings, delivery=delivery)[entry_id]


def begin_entries(
    *, entry_ids: Sequence[int], settings: Settings, delivery: Delivery = Delivery()
) -> dict[int, EntryJob | EntryOutcome]:
    """Load the entries; finish each here when there is nothing to fetch.

    For each entry, the outcome of one that is gone, already stored, or links
    to a page stored moments ago (linked to it, see :func:`_recently_fetched`);
    otherwise the :class:`EntryJob` to fetch and extract.

    Two reads for the whole batch (its entries, then the known articles at their
    URLs), and one single-statement write per entry linked to a known URL, none of
    which needs the others in its transaction: :func:`read_scope` runs them without
    ``BEGIN``/``COMMIT`` on PostgreSQL. A batch read them entry by entry before,
    two round trips of every entry on the pool process's main thread. The batch's
    own articles are committed only after all of its entries are extracted, so
    reading the known URLs once at the start misses nothing the batch could have
    seen later, except what other workers commit meanwhile (then the page is
    fetched again and the article updated, as a re-fetch would).
    """
    begun: dict[int, EntryJob | EntryOutcome] = {}
    with read_scope() as session:
        rows = store.entries_to_process(session, entry_ids)
        canonical = {i: _canonical(row.url) for i, row in rows.items() if row.status != "stored"}
        known = (
            {}
            if delivery.force
            else _recently_fetched(session, [c for c in canonical.values() if c], settings)
        )
        for entry_id in entry_ids:
            entry = rows.get(entry_id)
            if entry is None:
                begun[entry_id] = EntryOutcome(
                    entry_id=entry_id, status="skipped", error="no such entry"
                )
            elif entry.status == "stored" and not delivery.force:
                begun[entry_id] = EntryOutcome(
                    entry_id=entry_id, status="skipped", article_id=entry.article_id
                )
            elif (url := canonical.get(entry_id)) is not None and url in known:
                begun[entry_id] = _link_known_url(session, entry_id, known[url], delivery=delivery)
            else:
                begun[entry_id] = EntryJob(
                    entry_id=entry_id,
                    url=entry.url,
                    title=entry.title,
                    summary=entry.summary,
                    published_at=entry.published_at,
                    author=entry.author,
                    feed_id=entry.feed_id,
                    guid=entry.guid,
                )
    return begun


def _link_known_url(
    session: Session, entry_id: int, known: tuple[int, bool], *, delivery: Delivery
) -> EntryOutcome:
    article_id, positive = known
    store.mark_entry_stored(
        session,
        entry_id=entry_id,
        article_id=article_id,
        note=KNOWN_URL_NOTE,
        note_class="known_url",
        count_attempt=delivery.count_attempt,
    )
    log.info("entry_linked_known_url", entry_id=entry_id, article_id=article_id)
    return EntryOutcome(
        entry_id=entry_id,
        status="stored",
        article_id=article_id,
        action="known_url",
        is_ukraine_security=positive,
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


@dataclass(frozen=True)
class Prefetched:
    """An entry loaded ahead of its turn, and its page fetch if it needs one."""

    begun: EntryJob | EntryOutcome | None
    page: PageFuture | None


@dataclass(frozen=True)
class PreparedArticle:
    """An entry's article, extracted, classified and fingerprinted: what is left is to
    store it (:func:`store_prepared`), the only part of an entry that waits on the
    database's lock and round trips."""

    entry_id: int
    record: store.ArticleRecord
    note: str | None
    count_attempt: bool


def process_entry(
    *,
    entry_id: int,
    fetcher: Fetcher,
    settings: Settings,
    delivery: Delivery = Delivery(),
    ahead: Prefetched | None = None,
) -> EntryOutcome:
    """Fetch, extract, canonicalise, classify, dedup and store one feed entry.

    :func:`prepare_entry` followed by :func:`store_prepared`; see both for what
    each raises and records.
    """
    prepared = prepare_entry(
        entry_id=entry_id, fetcher=fetcher, settings=settings, delivery=delivery, ahead=ahead
    )
    if isinstance(prepared, EntryOutcome):
        return prepared
    return store_prepared(prepared, settings=settings)


def prepare_entry(
    *,
    entry_id: int,
    fetcher: Fetcher,
    settings: Settings,
    delivery: Delivery = Delivery(),
    ahead: Prefetched | None = None,
) -> EntryOutcome | PreparedArticle:
    """Everything of one entry up to storing its article: fetch, extract,
    canonicalise, classify and fingerprint.

    Returns the outcome of an entry that ends here (skipped, linked to a known URL,
    or failed, which is recorded), or the :class:`PreparedArticle` to store. A
    :class:`TransientError` propagates (the task retries it) unless this is the last
    attempt, when the feed's summary is used instead so the story is not lost; a
    permanent failure with no usable summary marks the entry ``failed`` with the
    reason. ``ahead``: the entry was already loaded by :func:`begin_entry` and its
    page is being fetched by a :class:`PagePrefetcher`.
    """
    begun = ahead.begun if ahead is not None else None
    page = ahead.page if ahead is not None else None
    if begun is None:
        begun = begin_entry(entry_id=entry_id, settings=settings, delivery=delivery)
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
        if not delivery.final_attempt or (delivery.can_defer and is_throttle(exc)):
            raise
        extracted, note = _fallback_or_fail(job, exc)
        if extracted is None:
            return _fail(entry_id, exc, count_attempt=delivery.count_attempt)
    except PermanentError as exc:
        extracted, note = _fallback_or_fail(job, exc)
        if extracted is None:
            return _fail(entry_id, exc, count_attempt=delivery.count_attempt)
    if extracted is None:
        return _fail(
            entry_id,
            PermanentError(
                "no article text and no feed summary",
                url=job.url,
                error_class="extraction_failed",
            ),
            count_attempt=delivery.count_attempt,
        )

    try:
        canonical = canonicalize_url(final_url, page_canonical=extracted.canonical_url)
    except InvalidURLError as exc:
        return _fail(
            entry_id,
            PermanentError(str(exc), url=final_url, error_class="bad_url"),
            count_attempt=delivery.count_attempt,
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
    return PreparedArticle(
        entry_id=entry_id, record=record, note=note, count_attempt=delivery.count_attempt
    )


def store_prepared(prepared: PreparedArticle, *, settings: Settings) -> EntryOutcome:
    """Store a prepared article and mark its entry stored, in one transaction
    (:func:`store_entry_article`). Database errors propagate for the task to retry;
    nothing is half-written."""
    saved = store_entry_article(
        entry_id=prepared.entry_id,
        record=prepared.record,
        settings=settings,
        note=prepared.note,
        count_attempt=prepared.count_attempt,
    )
    return _stored(prepared, saved)


def store_prepared_batch(
    batch: Sequence[PreparedArticle], *, settings: Settings
) -> list[EntryOutcome]:
    """Store several prepared articles, in order, in one transaction that takes the
    dedup lock once.

    Why: per article, storing alone paid a ``BEGIN``, the lock's upsert and a
    ``COMMIT`` besides its own statements, and each round trip leaves a core waiting
    (docs/benchmark.md). Storing a batch's articles together keeps what each entry
    was promised: its article and its ``stored`` mark commit together (with the
    others), so a crash leaves both or neither; the lookups of a later article see
    the earlier ones, as they would have committed. If the transaction fails, none
    is stored: the caller sends each entry on, or stores each alone.
    """
    with session_scope() as session:
        saved = _save_marking_entries(
            session, batch, window=timedelta(days=settings.dedup_window_days)
        )
    return [_stored(prepared, one) for prepared, one in zip(batch, saved, strict=True)]


def _stored(prepared: PreparedArticle, saved: store.SaveOutcome) -> EntryOutcome:
    record = prepared.record
    classification = record.classification
    log.info(
        "article_stored",
        entry_id=prepared.entry_id,
        article_id=saved.article_id,
        story_id=saved.story_id,
        action=saved.action,
        url=record.canonical_url,
        is_ukraine_security=classification.is_ukraine_security,
        score=classification.score,
    )
    return EntryOutcome(
        entry_id=prepared.entry_id,
        status="stored",
        article_id=saved.article_id,
        action=saved.action,
        extraction_method=record.extraction_method,
        error=prepared.note,
        is_ukraine_security=classification.is_ukraine_security,
    )


def store_entry_article(
    *,
    entry_id: int,
    record: store.ArticleRecord,
    settings: Settings,
    note: str | None = None,
    count_attempt: bool = False,
) -> store.SaveOutcome:
    """Persist an extracted, classified, fingerprinted article and mark its entry stored,
    in one transaction: the database work of one entry, apart from loading it.

    One transaction, so a crash leaves either both (a redelivery then skips the stored
    entry) or neither (the redelivery stores it afresh). A function of its own so that
    ``bench/store_scale.py`` times exactly what the task runs.
    """
    prepared = PreparedArticle(
        entry_id=entry_id, record=record, note=note, count_attempt=count_attempt
    )
    with session_scope() as session:
        (saved,) = _save_marking_entries(
            session, [prepared], window=timedelta(days=settings.dedup_window_days)
        )
    return saved


def _save_marking_entries(
    session: Session, batch: Sequence[PreparedArticle], *, window: timedelta
) -> list[store.SaveOutcome]:
    """Save the articles in order, then mark their entries stored, in the caller's
    transaction. The first article takes the dedup lock for all of them; the marks go
    in one statement (``store.mark_entries_stored``)."""
    saved = [
        store.save_article(session, prepared.record, window=window, lock=index == 0)
        for index, prepared in enumerate(batch)
    ]
    store.mark_entries_stored(
        session,
        [
            store.StoredMark(
                entry_id=prepared.entry_id,
                article_id=one.article_id,
                note=prepared.note,
                count_attempt=prepared.count_attempt,
            )
            for prepared, one in zip(batch, saved, strict=True)
        ],
    )
    return saved


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
