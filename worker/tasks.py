"""Celery tasks: thin wrappers that load settings, call the pipeline, and enqueue.

Retry policy lives on the decorators: transient errors (timeouts, 5xx, 429, a
database that is briefly away) retry with exponential backoff and jitter;
permanent errors are recorded by the pipeline and never retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy.exc
import structlog
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from . import pipeline, store
from .celery_app import app
from .db import session_scope
from .errors import TransientError
from .fetch import Fetcher
from .models import Entry, utcnow
from .politeness import build_fetcher
from .settings import Settings, get_settings

log = structlog.get_logger(__name__)

MAX_RETRIES = 5
RETRY_BACKOFF_MAX = 600
"""Seconds: the longest backoff of an entry's retry (the task's and a batch's alike)."""
RETRYABLE = (TransientError, sqlalchemy.exc.OperationalError)

_fetcher: Fetcher | None = None


def get_fetcher() -> Fetcher:
    """One HTTP client (connection pool) per worker process."""
    global _fetcher
    if _fetcher is None:
        # Limits from settings, plus the per-host limiter and robots.txt cache
        # shared through Redis by every worker (in-process without Redis).
        _fetcher = build_fetcher(get_settings())
    return _fetcher


def enqueue_entries(entry_ids: Sequence[int], *, force: bool = False) -> None:
    """Publish the entries as ``process_entries`` batches, in one round trip to Redis.

    A poll finds tens of new items at once. Each batch of
    ``entry_batch_size`` entries is one message (a lone entry is a plain
    ``process_entry``): every message costs the worker's main process a
    receive, a hand-off to a child and an acknowledgement, and the child sits
    idle while that happens (see :func:`process_entries`). All messages go out
    through kombu's publish batch, one Redis pipeline, at half the publisher's
    CPU per message (1.0-1.2 ms one by one, 0.5-0.6 ms in batches of 25:
    ``bench/publish_batch.py``). If the broker fails mid-way, the entries stay
    ``pending`` in the database and beat re-enqueues them after
    ``stale_pending_seconds``.
    """
    size = get_settings().entry_batch_size
    calls: list[tuple[Task, tuple[Any, ...], dict[str, Any]]] = []
    for start in range(0, len(entry_ids), size):
        chunk = [int(entry_id) for entry_id in entry_ids[start : start + size]]
        if len(chunk) == 1:
            calls.append((process_entry, (chunk[0],), {"force": force}))
        else:
            calls.append((process_entries, (chunk,), {"force": force}))
    _send_batch(calls)


def _send_batch(calls: Sequence[tuple[Task, tuple[Any, ...], dict[str, Any]]]) -> None:
    """Send each ``(task, args, kwargs)`` through one kombu publish batch."""
    if not calls:
        return
    with app.producer_or_acquire() as producer, producer.batch():
        for task, args, kwargs in calls:
            task.apply_async(args, kwargs, producer=producer)


def _bind(task: Task, **context: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task.request.id, task=task.name, **context)


@app.task(bind=True, name="worker.tasks.poll_due_feeds", acks_late=True)
def poll_due_feeds(self: Task) -> int:
    """Enqueue a poll for every feed that is due, and re-enqueue stranded entries."""
    _bind(self)
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        feed_ids = store.due_feed_ids(
            session,
            now=now,
            limit=settings.due_batch_size,
            claim_seconds=pipeline.FEED_LEASE_SECONDS,
        )
        stale = store.stale_pending_entry_ids(
            session,
            older_than=now - timedelta(seconds=settings.stale_pending_seconds),
            limit=settings.due_batch_size,
        )
        store.touch_entries(session, stale)
    _send_batch([(poll_feed, (feed_id,), {}) for feed_id in feed_ids])
    enqueue_entries(stale)
    log.info("due_feeds_enqueued", feeds=len(feed_ids), stale_entries=len(stale))
    return len(feed_ids)


@app.task(
    bind=True,
    name="worker.tasks.poll_feed",
    acks_late=True,
    autoretry_for=(sqlalchemy.exc.OperationalError,),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def poll_feed(self: Task, feed_id: int, force: bool = False) -> dict[str, Any]:
    _bind(self, feed_id=feed_id)
    outcome = pipeline.poll_feed(
        feed_id=feed_id,
        fetcher=get_fetcher(),
        settings=get_settings(),
        owner=str(self.request.id or f"local-{feed_id}"),
        force=force,
    )
    enqueue_entries(outcome.new_entry_ids, force=force)
    return {
        "status": outcome.status,
        "new": len(outcome.new_entry_ids),
        "http_status": outcome.http_status,  # for the fetch metrics (_count_outcome)
    }


def _is_repeat(task: Task) -> bool:
    """A retry, or a message put back after its worker was lost."""
    return bool(task.request.retries) or bool((task.request.delivery_info or {}).get("redelivered"))


def _broker_marks_redelivery(settings: Settings) -> bool:
    """Whether a message put back by the broker arrives flagged ``redelivered``.

    The attempts cap exists for loops: a page that kills its process comes back
    as a *redelivered* message, an error as a *retry*. A first delivery cannot be
    part of a loop yet, so it skips the count-at-start write (and, on SQLite, a
    second turn at the database write lock per entry; see ``bench/run.py``) and
    counts itself in the write that stores or fails the entry. Redis flags the
    messages it puts back (lost worker, expired visibility timeout); on other
    transports we cannot tell, so every attempt counts at start there.
    """
    return settings.broker_url.startswith(("redis://", "rediss://"))


def _count_attempt(entry_id: int) -> None:
    """Count a first attempt that ends in an error the task retries (best effort)."""
    try:
        with session_scope() as session:
            store.begin_entry_attempt(session, entry_id=entry_id)
    except sqlalchemy.exc.OperationalError:
        pass  # the database is away: the retry, counted at its start, still counts


def _give_up(
    entry_id: int, *, error: str, error_class: str, count_attempt: bool = False
) -> dict[str, Any]:
    with session_scope() as session:
        entry = session.get(Entry, entry_id)
        if entry is None or entry.status == "stored":  # another delivery got there first
            return {"status": "skipped", "article_id": entry and entry.article_id, "action": None}
        store.mark_entry_failed(
            session,
            entry_id=entry_id,
            error=error,
            error_class=error_class,
            count_attempt=count_attempt,
        )
    log.warning("entry_failed", entry_id=entry_id, error=error, error_class=error_class)
    return {"status": "failed", "article_id": None, "action": None}


class EntryTask(Task):  # type: ignore[misc]
    """Records a hard time-limit kill on the entry (Celery calls this in the parent)."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if isinstance(exc, TimeLimitExceeded) and args:
            _give_up(
                int(args[0]),
                error=f"hard time limit exceeded ({exc})",
                error_class="timeout",
            )


class _GaveUpError(Exception):
    """The attempts cap was reached before the entry was processed."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("status"))
        self.result = result


class _TimedOutError(Exception):
    """The soft time limit struck while processing the entry."""

    def __init__(self, *, counted: bool) -> None:
        super().__init__("soft time limit exceeded")
        self.counted = counted


def _run_entry(
    entry_id: int,
    *,
    force: bool,
    repeat: bool,
    final_attempt: bool,
    settings: Settings,
    ahead: _Ahead | None = None,
) -> dict[str, Any]:
    """One attempt at one entry, shared by ``process_entry`` and ``process_entries``.

    Returns the task-level result; raises what the caller must handle (``RETRYABLE``,
    :class:`_TimedOutError`) and :class:`_GaveUpError` past the attempts cap.
    ``ahead``: the entry was loaded, and its page fetch started, while the
    previous entry of its batch was processed.
    """
    counted = force or repeat or not _broker_marks_redelivery(settings)
    if counted:
        with session_scope() as session:
            attempts = store.begin_entry_attempt(
                session, entry_id=entry_id, at_least=2 if repeat else 1
            )
        if attempts is not None and attempts > settings.max_entry_attempts and not force:
            raise _GaveUpError(
                _give_up(
                    entry_id,
                    error=f"gave up after {attempts - 1} attempts",
                    error_class="attempts_exhausted",
                )
            )
    try:
        outcome = pipeline.process_entry(
            entry_id=entry_id,
            fetcher=get_fetcher(),
            settings=settings,
            force=force,
            final_attempt=final_attempt,
            count_attempt=not counted,
            begun=ahead.begun if ahead is not None else None,
            page=ahead.page if ahead is not None else None,
        )
    except RETRYABLE:
        if not counted:
            _count_attempt(entry_id)
        raise
    except SoftTimeLimitExceeded as exc:
        raise _TimedOutError(counted=counted) from exc
    result = {
        "entry_id": entry_id,
        "status": outcome.status,
        "article_id": outcome.article_id,
        "action": outcome.action,
        "is_ukraine_security": outcome.is_ukraine_security,
    }
    return result


def _timed_out(entry_id: int, exc: _TimedOutError, limit: Any) -> dict[str, Any]:
    return _give_up(
        entry_id,
        error=f"processing exceeded the soft time limit ({limit})",
        error_class="timeout",
        count_attempt=not exc.counted,
    )


@app.task(
    bind=True,
    base=EntryTask,
    name="worker.tasks.process_entry",
    acks_late=True,
    autoretry_for=RETRYABLE,
    retry_backoff=True,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def process_entry(
    self: Task, entry_id: int, force: bool = False, repeat: bool = False
) -> dict[str, Any]:
    """Process one entry within the time limit and a cap on started attempts.

    A page that outlives the soft time limit is recorded as failed (``timeout``)
    and acknowledged; the attempts cap ends crash loops (a page that gets the
    process killed is redelivered, and would otherwise be forever).
    ``repeat``: the entry was already attempted in a run that died (sent by
    :func:`process_entries` for a redelivered batch), so this run counts.
    """
    _bind(self, entry_id=entry_id)
    try:
        result = _run_entry(
            entry_id,
            force=force,
            repeat=repeat or _is_repeat(self),
            final_attempt=self.request.retries >= MAX_RETRIES,
            settings=get_settings(),
        )
    except _GaveUpError as gave_up:
        return gave_up.result
    except TransientError as exc:
        if exc.retry_after:
            # The server (or our per-host limiter) said when to come back:
            # wait that long rather than the generic exponential backoff.
            raise self.retry(exc=exc, countdown=_retry_after_countdown(exc.retry_after)) from exc
        raise
    except _TimedOutError as exc:
        return _timed_out(entry_id, exc, self.request.timelimit)
    return result


def _retry_after_countdown(retry_after: float) -> float:
    return min(retry_after, 3600.0) + random.uniform(0, 5)


class EntryBatchTask(Task):  # type: ignore[misc]
    """After a hard time-limit kill, the batch's entries go on alone (in the parent)."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if isinstance(exc, TimeLimitExceeded) and args:
            # Which entry hung is unknown here; alone, each gets its own limit
            # and the one that hangs again is recorded as timed out.
            force = bool((kwargs or {}).get("force", False))
            _send_alone([int(i) for i in args[0]], force=force, repeat=True)


def _send_alone(entry_ids: Sequence[int], *, force: bool, repeat: bool) -> None:
    _send_batch(
        [(process_entry, (entry_id,), {"force": force, "repeat": repeat}) for entry_id in entry_ids]
    )


@app.task(bind=True, base=EntryBatchTask, name="worker.tasks.process_entries", acks_late=True)
def process_entries(self: Task, entry_ids: list[int], force: bool = False) -> dict[str, Any]:
    """Process several entries of one poll, one after another, in one task.

    Why batch: each Celery message costs the worker's main process ~1.5 ms of
    CPU (receive, hand the task to a child, acknowledge) and leaves the child
    idle while that happens; with ~40-90 ms of work per page that was 8-11 %
    of throughput (``bench/run.py``). Nothing else is shared: each entry has
    its own transaction, outcome and attempts count, and whatever needs
    another attempt leaves the batch as its own ``process_entry`` task, so
    retries, time limits and the crash-loop cap still act per entry:

    - a retryable error (timeout, 5xx, 429, database away) sends that entry
      alone with the backoff of a first retry (or the server's Retry-After);
    - the soft time limit gives up on the entry that used up the time (more
      than half of it) and sends the rest on, as a new batch;
    - a redelivered batch (its worker died) splits into single entries that
      count the lost attempt, so a page that kills its process is capped by
      attempts alone, without taking its neighbours with it.
    """
    _bind(self, batch=len(entry_ids))
    if _is_repeat(self):
        _send_alone(entry_ids, force=force, repeat=True)
        log.warning("entry_batch_split", entries=len(entry_ids), reason="redelivered")
        return {"status": "split", "entries": []}
    settings = get_settings()
    soft_limit = (self.request.timelimit or (None, None))[1] or app.conf.task_soft_time_limit
    counted = force or not _broker_marks_redelivery(settings)
    results: list[dict[str, Any]] = []
    with pipeline.PagePrefetcher(get_fetcher(), settings) as prefetcher:
        upcoming = _begin_ahead(
            entry_ids[0], force=force, counted=counted, settings=settings, prefetcher=prefetcher
        )
        for index, entry_id in enumerate(entry_ids):
            structlog.contextvars.bind_contextvars(entry_id=entry_id)
            started = time.monotonic()
            ahead, upcoming = upcoming, None
            try:
                if index + 1 < len(entry_ids):
                    # Load the next entry and start fetching its page now: the
                    # fetch waits on the network while this entry is extracted.
                    upcoming = _begin_ahead(
                        entry_ids[index + 1],
                        force=force,
                        counted=counted,
                        settings=settings,
                        prefetcher=prefetcher,
                    )
                result = _run_entry(
                    entry_id,
                    force=force,
                    repeat=False,
                    final_attempt=False,
                    settings=settings,
                    ahead=ahead,
                )
            except _GaveUpError as gave_up:
                result = gave_up.result
            except RETRYABLE as exc:
                _retry_alone(entry_id, exc, force=force)
                continue
            except (_TimedOutError, SoftTimeLimitExceeded) as exc:
                rest = list(entry_ids[index + 1 :])
                if isinstance(exc, _TimedOutError) and (
                    not soft_limit or time.monotonic() - started >= float(soft_limit) / 2
                ):
                    results.append({"entry_id": entry_id, **_timed_out(entry_id, exc, soft_limit)})
                else:  # earlier entries used the time: this one gets its own
                    rest.insert(0, entry_id)
                enqueue_entries(rest, force=force)
                break
            results.append(result)
    return {"status": "done", "entries": results}


@dataclass(frozen=True)
class _Ahead:
    """An entry loaded ahead of its turn, and its page fetch if it needs one."""

    begun: pipeline.EntryJob | pipeline.EntryOutcome | None
    page: pipeline.PageFuture | None


def _begin_ahead(
    entry_id: int,
    *,
    force: bool,
    counted: bool,
    settings: Settings,
    prefetcher: pipeline.PagePrefetcher,
) -> _Ahead | None:
    """Load ``entry_id`` and start its fetch; on a database error, leave both to its turn
    (where the error is met again and handled like any other)."""
    try:
        begun = pipeline.begin_entry(
            entry_id=entry_id, settings=settings, force=force, count_attempt=not counted
        )
    except RETRYABLE:
        return None
    page = prefetcher.submit(begun) if isinstance(begun, pipeline.EntryJob) else None
    return _Ahead(begun=begun, page=page)


def _retry_alone(entry_id: int, exc: Exception, *, force: bool) -> None:
    """Send one entry of a batch on as a first retry of ``process_entry``."""
    if isinstance(exc, TransientError) and exc.retry_after:
        countdown = _retry_after_countdown(exc.retry_after)
    else:  # what autoretry's backoff gives a first retry (retry_backoff, jitter)
        countdown = get_exponential_backoff_interval(
            factor=1, retries=0, maximum=RETRY_BACKOFF_MAX, full_jitter=True
        )
    process_entry.apply_async((entry_id,), {"force": force}, countdown=countdown, retries=1)
    log.info(
        "entry_retry_scheduled", entry_id=entry_id, countdown=round(countdown, 1), error=str(exc)
    )


@app.task(
    bind=True,
    name="worker.tasks.reclassify_batch",
    acks_late=True,
    autoretry_for=(sqlalchemy.exc.OperationalError,),
    retry_backoff=True,
    max_retries=MAX_RETRIES,
)
def reclassify_batch(self: Task, article_ids: list[int]) -> int:
    _bind(self, batch=len(article_ids))
    return pipeline.reclassify_articles(article_ids)


# --- operator tasks and metrics (issue 6) ----------------------------------------
# Re-crawls and reclassification are enqueued by the CLI and the API through
# worker.broker; counters are taken from each task's returned outcome (a
# task_postrun hook), so the wrappers above and the pure core stay untouched.

LEASE_BUSY_RETRY_SECONDS = 15


@app.task(
    bind=True,
    name="worker.tasks.run_crawl_request",
    acks_late=True,
    autoretry_for=(sqlalchemy.exc.OperationalError,),
    retry_backoff=True,
    max_retries=MAX_RETRIES,
)
def run_crawl_request(self: Task, request_id: int) -> dict[str, Any]:
    """Expand a re-crawl request into ``process_entry`` tasks and link them to it.

    ``feed``: poll the feed now (with ``force``: no conditional GET, and its
    current items are fetched and extracted again); ``url``: the one entry made
    when the request was recorded; ``since``: entries first seen since a date
    (with ``force`` also those already stored, else only pending/failed ones).
    Running twice links and enqueues the same entries again, which is harmless.
    """
    from datetime import datetime

    from .models import CrawlRequest

    _bind(self, crawl_request_id=request_id)
    with session_scope() as session:
        request = session.get(CrawlRequest, request_id)
        if request is None:
            return {"status": "missing"}
        kind, target, force = request.kind, request.target, request.force
        feed = store.get_feed_by_name(session, target) if kind == "feed" else None
        feed_id = feed.id if feed is not None else None
    entry_ids: list[int] = []
    if kind == "feed":
        if feed_id is None:
            with session_scope() as session:
                store.fail_crawl_request(session, request_id=request_id, reason="no such feed")
            return {"status": "failed"}
        structlog.contextvars.bind_contextvars(feed_id=feed_id, feed=target)
        outcome = pipeline.poll_feed(
            feed_id=feed_id,
            fetcher=get_fetcher(),
            settings=get_settings(),
            owner=str(self.request.id or f"recrawl-{request_id}"),
            force=force,
        )
        _metrics().record_poll(outcome.status, outcome.http_status)
        if outcome.status == "skipped":  # a scheduled poll holds the feed's lease
            raise self.retry(countdown=LEASE_BUSY_RETRY_SECONDS, max_retries=20)
        if outcome.status == "error":
            with session_scope() as session:
                store.fail_crawl_request(
                    session, request_id=request_id, reason=outcome.error or "poll failed"
                )
            return {"status": "failed", "error": outcome.error}
        entry_ids = list(outcome.new_entry_ids)
        if force:
            with session_scope() as session:
                entry_ids += store.recent_feed_entry_ids(
                    session, feed_id=feed_id, limit=max(outcome.entries_seen, 1)
                )
    with session_scope() as session:
        if kind == "url":
            entry_ids = store.entry_ids_for_request(session, request_id)
        elif kind == "since":
            entry_ids = store.entry_ids_since(
                session, since=datetime.fromisoformat(target), include_stored=force
            )
        entry_ids = sorted(set(entry_ids))
        store.start_crawl_request(session, request_id=request_id, entry_ids=entry_ids)
    enqueue_entries(entry_ids, force=force)
    log.info("crawl_request_started", kind=kind, target=target, entries=len(entry_ids))
    return {"status": "running", "entries": len(entry_ids)}


def _metrics() -> Any:
    from . import metrics

    return metrics


def _count_outcome(
    task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    """Turn a finished task's returned outcome into Prometheus counters."""
    if state != "SUCCESS" or not isinstance(retval, dict) or task is None:
        return
    if task.name == poll_feed.name:
        _metrics().record_poll(str(retval.get("status")), retval.get("http_status"))
    elif task.name == process_entry.name:
        _count_entry(retval)
    elif task.name == process_entries.name:
        for result in retval.get("entries") or []:
            _count_entry(result)


def _count_entry(result: dict[str, Any]) -> None:
    # The label travels in the task's return value: no extra query per entry.
    status, action = str(result.get("status")), result.get("action")
    positive = result.get("is_ukraine_security") if action != "updated" else None
    _metrics().record_entry(status, action, positive=bool(positive))


def _connect_metrics() -> None:
    from celery.signals import task_postrun

    _metrics()  # importing it connects the task-latency signals
    task_postrun.connect(_count_outcome, weak=False)


_connect_metrics()
