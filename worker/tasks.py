"""Celery tasks: thin wrappers that bind log context, call one pipeline function,
enqueue what it produced, and return a small dict (the metrics hook reads it).

Everything about an entry or a feed lives in :mod:`worker.pipeline`; what stays
here is what only the queue knows: whether this delivery is a retry or a
redelivery, the time limits, and how a batch hands entries on. Every task has
the same retry policy (:mod:`worker.task_policy`): transient errors (timeouts, 5xx, 429, a
database that is briefly away) retry with exponential backoff, never sooner than
``retry_base_seconds`` (:mod:`worker.backoff`); permanent errors are recorded by
the pipeline and never retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from . import pipeline, store
from .backoff import defer_delay
from .celery_app import PRUNE_FEED_POLLS_SECONDS
from .db import session_scope
from .errors import TransientError, is_throttle
from .fetch import Fetcher
from .models import utcnow
from .politeness import build_fetcher
from .settings import Settings, get_settings
from .task_policy import (
    MAX_DEFERRALS,
    MAX_RETRIES,
    RETRYABLE,
    PolicyTask,
    _task,
    app,
    beat_tick,
    retry_countdown,
)

log = structlog.get_logger(__name__)

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

    A poll finds tens of new items at once. They go out in batches of at most
    ``entry_batch_size``, as even as can be (:func:`even_batches`), each one
    message (a lone entry is a plain ``process_entry``): every message costs
    the worker's main process a receive, a hand-off to a child and an
    acknowledgement, and the child sits
    idle while that happens (see :func:`process_entries`). All messages go out
    through kombu's publish batch, one Redis pipeline, which halves the
    publisher's CPU per message (``bench/publish_batch.py``). If the broker
    fails mid-way, the entries stay ``pending`` in the database and beat
    re-enqueues them after ``stale_pending_seconds``.
    """
    calls: list[tuple[Task, tuple[Any, ...], dict[str, Any]]] = []
    for chunk in even_batches(
        [int(entry_id) for entry_id in entry_ids], get_settings().entry_batch_size
    ):
        if len(chunk) == 1:
            calls.append((process_entry, (chunk[0],), {"force": force}))
        else:
            calls.append((process_entries, (chunk,), {"force": force}))
    _send_batch(calls)


def even_batches(items: Sequence[int], size: int) -> list[list[int]]:
    """``items`` in order, cut into as few batches of at most ``size`` as possible, whose
    lengths differ by at most one.

    Why not plain chunks of ``size``: 9 entries would go out as 8 and 1, and the 8 would
    keep one pool process busy for eight extractions while another handled one; as 5
    and 4 they finish together, and no entry pays for a task of its own.
    """
    if not items:
        return []
    count = -(-len(items) // size)
    base, extra = divmod(len(items), count)
    batches: list[list[int]] = []
    start = 0
    for index in range(count):
        stop = start + base + (1 if index < extra else 0)
        batches.append(list(items[start:stop]))
        start = stop
    return batches


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


# Feeds


@_task("poll_due_feeds", retry_on=())
@beat_tick
def poll_due_feeds(self: Task) -> int | None:
    """Enqueue a poll for every feed that is due, and re-enqueue stranded entries and
    re-crawl requests whose message was lost.

    The log line times the tick (``tick_ms``) and its two main parts (``claim_ms``:
    the feed claims in the database, ``send_ms``: the messages to Redis), because a
    tick that grows towards the beat interval is the first sign that the tick has
    become the polling bottleneck (docs/scale-feeds.md).
    """
    _bind(self)
    started = time.perf_counter()
    settings = get_settings()
    now = utcnow()
    claim = pipeline.claim_due_feeds(settings=settings, now=now)
    with session_scope() as session:
        stale = store.stale_pending_entry_ids(
            session,
            older_than=now - timedelta(seconds=settings.stale_pending_seconds),
            limit=settings.due_batch_size,
        )
        store.touch_entries(session, stale)
        lost_requests = store.queued_crawl_request_ids(
            session,
            older_than=now - timedelta(seconds=settings.stale_pending_seconds),
            limit=settings.due_batch_size,
        )
    sending = time.perf_counter()
    _send_batch(
        [(poll_feed, (feed_id,), {}) for feed_id in claim.feed_ids]
        + [(run_crawl_request, (request_id,), {}) for request_id in lost_requests]
    )
    enqueue_entries(stale)
    done = time.perf_counter()
    log.info("due_feeds_enqueued", feeds=len(claim.feed_ids), claims=claim.claims,
             claim_ms=round(claim.claim_ms, 1), send_ms=round((done - sending) * 1000, 1),
             tick_ms=round((done - started) * 1000, 1),
             stale_entries=len(stale), crawl_requests_resent=len(lost_requests))  # fmt: skip
    return len(claim.feed_ids)


@_task("poll_feed")
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
        "http_status": outcome.http_status,  # for the fetch metrics (task_metrics.count_outcome)
    }


# Entries


def _is_repeat(task: Task) -> bool:
    """A retry, or a message put back after its worker was lost."""
    return bool(task.request.retries) or bool((task.request.delivery_info or {}).get("redelivered"))


def _result(outcome: pipeline.EntryOutcome) -> dict[str, Any]:
    """An entry's outcome as a task result (the metrics hook counts it)."""
    return {
        "entry_id": outcome.entry_id,
        "status": outcome.status,
        "article_id": outcome.article_id,
        "action": outcome.action,
        "is_ukraine_security": outcome.is_ukraine_security,
    }


class EntryTask(PolicyTask):
    """Records a hard time-limit kill on the entry (Celery calls this in the parent)."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if isinstance(exc, TimeLimitExceeded) and args:
            pipeline.give_up(
                int(args[0]),
                error=f"hard time limit exceeded ({exc})",
                error_class="timeout",
            )


class _GaveUpError(Exception):
    """The attempts cap was reached before the entry was processed."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("status"))
        self.result = result


class _DeferredError(Exception):
    """The entry's host is paused: send the entry again after the pause."""

    def __init__(self, refusal: TransientError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class _TimedOutError(Exception):
    """The soft time limit struck while processing the entry."""

    def __init__(self, *, counted: bool) -> None:
        super().__init__("soft time limit exceeded")
        self.counted = counted


@dataclass(frozen=True)
class _Pending:
    """An entry of a batch whose article waits to be stored with the batch's others."""

    prepared: pipeline.PreparedArticle
    delivery: pipeline.Delivery


def _run_entry(
    entry_id: int,
    *,
    force: bool,
    repeat: bool,
    final_attempt: bool,
    settings: Settings,
    deferrals: int = 0,
    ahead: pipeline.Prefetched | None = None,
    store: bool = True,
) -> dict[str, Any] | _Pending:
    """One attempt at one entry, shared by ``process_entry`` and ``process_entries``.

    Returns the task-level result; raises what the caller must handle (``RETRYABLE``,
    :class:`_DeferredError`, :class:`_TimedOutError`) and :class:`_GaveUpError` past
    the attempts cap. ``deferrals``: how often the entry was already held back for a
    paused host. ``ahead``: the entry was loaded, and its page fetch started, while
    the previous entry of its batch was processed. ``store=False``: return the
    prepared article as :class:`_Pending` instead of storing it (a batch stores its
    articles together, :func:`_store_pending`).
    """
    started = pipeline.start_attempt(
        entry_id,
        force=force,
        repeat=repeat,
        final_attempt=final_attempt,
        settings=settings,
        can_defer=deferrals < MAX_DEFERRALS,
    )
    if isinstance(started, pipeline.EntryOutcome):
        raise _GaveUpError(_result(started))
    try:
        prepared = pipeline.prepare_entry(
            entry_id=entry_id,
            fetcher=get_fetcher(),
            settings=settings,
            delivery=started,
            ahead=ahead,
        )
        if isinstance(prepared, pipeline.EntryOutcome):
            return _result(prepared)
        if not store:
            return _Pending(prepared, started)
        return _result(pipeline.store_prepared(prepared, settings=settings))
    except RETRYABLE as exc:
        if started.can_defer and isinstance(exc, TransientError) and is_throttle(exc):
            # Our limiter refused before any request: not an attempt, not a retry.
            pipeline.defer_attempt(entry_id, started, reason=str(exc))
            raise _DeferredError(exc) from exc
        pipeline.count_failed_attempt(entry_id, started)
        raise
    except SoftTimeLimitExceeded as exc:
        raise _TimedOutError(counted=not started.count_attempt) from exc


def _defer(
    entry_id: int, refusal: TransientError, *, force: bool, retries: int, deferrals: int
) -> dict[str, Any]:
    """Send the entry again when its host's pause ends, keeping its retries so far."""
    countdown = defer_delay(refusal.retry_after or 0.0)
    process_entry.apply_async(
        (entry_id,), {"force": force, "deferrals": deferrals}, countdown=countdown, retries=retries
    )
    log.info(
        "entry_deferred",
        entry_id=entry_id,
        countdown=round(countdown, 1),
        deferrals=deferrals,
        reason=str(refusal),
    )
    return {"entry_id": entry_id, "status": "deferred"}


def _timed_out(entry_id: int, exc: _TimedOutError, limit: Any) -> dict[str, Any]:
    outcome = pipeline.give_up(
        entry_id,
        error=f"processing exceeded the soft time limit ({limit})",
        error_class="timeout",
        count_attempt=not exc.counted,
    )
    return _result(outcome)


@_task("process_entry", retry_on=RETRYABLE, base=EntryTask)
def process_entry(
    self: Task, entry_id: int, force: bool = False, repeat: bool = False, deferrals: int = 0
) -> dict[str, Any]:
    """Process one entry within the time limit and a cap on started attempts.

    A page that outlives the soft time limit is recorded as failed (``timeout``)
    and acknowledged; the attempts cap ends crash loops (a page that gets the
    process killed is redelivered, and would otherwise be forever).
    ``repeat``: the entry was already attempted in a run that died (sent by
    :func:`process_entries` for a redelivered batch), so this run counts.
    ``deferrals``: times the entry was held back for a paused host (at most
    :data:`MAX_DEFERRALS`; those neither count as attempts nor use up retries).
    """
    _bind(self, entry_id=entry_id)
    try:
        result = _run_entry(
            entry_id,
            force=force,
            repeat=repeat or _is_repeat(self),
            final_attempt=self.request.retries >= MAX_RETRIES,
            settings=get_settings(),
            deferrals=deferrals,
        )
        assert isinstance(result, dict)  # stored: store=True
    except _GaveUpError as gave_up:
        return gave_up.result
    except _DeferredError as deferred:
        return _defer(
            entry_id,
            deferred.refusal,
            force=force,
            retries=self.request.retries,
            deferrals=deferrals + 1,
        )
    except _TimedOutError as exc:
        return _timed_out(entry_id, exc, self.request.timelimit)
    return result


class EntryBatchTask(PolicyTask):
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


@_task("process_entries", retry_on=(), base=EntryBatchTask)
def process_entries(self: Task, entry_ids: list[int], force: bool = False) -> dict[str, Any]:
    """Process several entries of one poll, one after another, in one task.

    Why batch: each Celery message costs the worker's main process CPU
    (receive, hand the task to a child, acknowledge) and leaves the child
    idle while that happens; with tens of milliseconds of work per page that
    was a measurable share of throughput (``bench/run.py``). The entries'
    articles are stored together at the end, in one transaction with one turn at
    the dedup lock (:func:`_store_pending`), which saves each entry a ``BEGIN``,
    the lock's upsert and a ``COMMIT``. Nothing else is shared: each entry has its
    own outcome and attempts count, and whatever needs another attempt leaves the
    batch as its own ``process_entry`` task, so retries, time limits and the
    crash-loop cap still act per entry:

    - a retryable error (timeout, 5xx, 429, database away) sends that entry
      alone with the backoff of a first retry (or the server's Retry-After);
    - a refusal because the entry's host is paused (a 429, or its circuit
      breaker) sends it alone after the pause, as a deferral, not a retry;
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
    counted = pipeline.counted_at_start(force=force, repeat=False, settings=settings)
    results: list[dict[str, Any]] = []
    pending: list[_Pending] = []
    begun = _begin_all(entry_ids, force=force, counted=counted, settings=settings)
    with pipeline.PagePrefetcher(get_fetcher(), settings) as prefetcher:
        upcoming = _begin_ahead(begun.get(entry_ids[0]), prefetcher=prefetcher)
        for index, entry_id in enumerate(entry_ids):
            structlog.contextvars.bind_contextvars(entry_id=entry_id)
            started = time.monotonic()
            ahead, upcoming = upcoming, None
            try:
                if index + 1 < len(entry_ids):
                    # Start fetching the next entry's page now: the fetch
                    # waits on the network while this entry is extracted.
                    upcoming = _begin_ahead(begun.get(entry_ids[index + 1]), prefetcher=prefetcher)
                result = _run_entry(
                    entry_id,
                    force=force,
                    repeat=False,
                    final_attempt=False,
                    settings=settings,
                    ahead=ahead,
                    store=False,
                )
            except _GaveUpError as gave_up:
                result = gave_up.result
            except _DeferredError as deferred:
                result = _defer(entry_id, deferred.refusal, force=force, retries=0, deferrals=1)
            except RETRYABLE as exc:
                _retry_alone(entry_id, exc, force=force)
                continue
            except (_TimedOutError, SoftTimeLimitExceeded) as exc:
                rest = list(entry_ids[index + 1 :])
                if isinstance(exc, _TimedOutError) and (
                    not soft_limit or time.monotonic() - started >= float(soft_limit) / 2
                ):
                    results.append(_timed_out(entry_id, exc, soft_limit))
                else:  # earlier entries used the time: this one gets its own
                    rest.insert(0, entry_id)
                enqueue_entries(rest, force=force)
                break
            if isinstance(result, _Pending):
                pending.append(result)
            else:
                results.append(result)
    results.extend(_store_pending(pending, force=force, settings=settings))
    return {"status": "done", "entries": results}


def _store_pending(
    pending: Sequence[_Pending], *, force: bool, settings: Settings
) -> list[dict[str, Any]]:
    """Store a batch's prepared articles in one transaction (``pipeline.store_prepared_batch``).

    If that transaction meets a ``RETRYABLE`` error, nothing of it was stored: each
    entry counts its failed attempt and goes on alone as a retry, as an entry stored
    alone would. Any other error may belong to one article alone, so each is then
    stored in a transaction of its own, and only the one at fault fails. If the soft
    time limit strikes, the entries go on as a new batch.
    """
    if not pending:
        return []
    try:
        outcomes = pipeline.store_prepared_batch(
            [one.prepared for one in pending], settings=settings
        )
    except RETRYABLE as exc:
        for one in pending:
            _retry_failed_store(one, exc, force=force)
        return []
    except SoftTimeLimitExceeded:
        enqueue_entries([one.prepared.entry_id for one in pending], force=force)
        return []
    except Exception as exc:
        log.warning("entry_batch_store_failed", entries=len(pending), error=repr(exc))
        return _store_each_alone(pending, force=force, settings=settings)
    return [_result(outcome) for outcome in outcomes]


def _store_each_alone(
    pending: Sequence[_Pending], *, force: bool, settings: Settings
) -> list[dict[str, Any]]:
    """Store each article in its own transaction. An entry whose store meets a
    ``RETRYABLE`` error goes on alone as a retry; the first other error is raised
    again once the rest are stored (the task fails for that entry, as it would have
    with the entry alone, and its neighbours are not held back by it)."""
    results: list[dict[str, Any]] = []
    failure: Exception | None = None
    for one in pending:
        entry_id = one.prepared.entry_id
        try:
            results.append(_result(pipeline.store_prepared(one.prepared, settings=settings)))
        except RETRYABLE as exc:
            _retry_failed_store(one, exc, force=force)
        except Exception as exc:
            log.exception("entry_store_failed", entry_id=entry_id)
            failure = failure or exc
    if failure is not None:
        raise failure
    return results


def _retry_failed_store(one: _Pending, exc: Exception, *, force: bool) -> None:
    """A store that met a ``RETRYABLE`` error: count the attempt, send the entry on alone."""
    pipeline.count_failed_attempt(one.prepared.entry_id, one.delivery)
    _retry_alone(one.prepared.entry_id, exc, force=force)


def _begin_all(
    entry_ids: Sequence[int], *, force: bool, counted: bool, settings: Settings
) -> dict[int, pipeline.EntryJob | pipeline.EntryOutcome]:
    """Load the batch's entries in one read (``pipeline.begin_entries``); on a database
    error, leave each to its turn (where the error is met again and handled like any
    other)."""
    try:
        return pipeline.begin_entries(
            entry_ids=entry_ids,
            settings=settings,
            delivery=pipeline.Delivery(force=force, count_attempt=not counted),
        )
    except RETRYABLE:
        return {}


def _begin_ahead(
    begun: pipeline.EntryJob | pipeline.EntryOutcome | None,
    *,
    prefetcher: pipeline.PagePrefetcher,
) -> pipeline.Prefetched | None:
    """An entry loaded by :func:`_begin_all`, with its page's fetch started; None for
    one that was not loaded (it is loaded at its turn)."""
    if begun is None:
        return None
    page = prefetcher.submit(begun) if isinstance(begun, pipeline.EntryJob) else None
    return pipeline.Prefetched(begun=begun, page=page)


def _retry_alone(entry_id: int, exc: Exception, *, force: bool) -> None:
    """Send one entry of a batch on as a first retry of ``process_entry``."""
    countdown = retry_countdown(exc, 0)
    process_entry.apply_async((entry_id,), {"force": force}, countdown=countdown, retries=1)
    log.info(
        "entry_retry_scheduled", entry_id=entry_id, countdown=round(countdown, 1), error=str(exc)
    )


# Retention


@_task("prune_feed_polls", retry_on=())
@beat_tick
def prune_feed_polls(self: Task) -> dict[str, Any] | None:
    """Delete ``feed_polls`` rows past ``INGEST_FEED_POLLS_RETENTION_DAYS`` (each feed's
    newest ``ok`` poll and what follows it stay): hourly, from beat.

    One run takes at most half the task time limit; a run that stopped there with more
    to delete (a backlog: the first run on an old database) sends itself again, so the
    backlog goes in consecutive runs rather than one an hour. Two runs at once are safe
    (:func:`worker.store.polls.prune_polls`). A database that is away skips the run
    (:func:`~worker.task_policy.beat_tick`); the next hour's run does the work.
    """
    _bind(self)
    settings = get_settings()
    result = pipeline.prune_feed_polls(
        settings=settings, now=utcnow(), time_budget=settings.task_time_limit / 2
    )
    if not result.finished:
        prune_feed_polls.apply_async(expires=PRUNE_FEED_POLLS_SECONDS)
    return {"deleted": result.deleted, "finished": result.finished}


# Operators' work: reclassification and re-crawls


@_task("reclassify_batch")
def reclassify_batch(self: Task, article_ids: list[int]) -> int:
    _bind(self, batch=len(article_ids))
    return pipeline.reclassify_articles(article_ids)


# Re-crawls and reclassification are enqueued by the CLI and the API through
# worker.broker.

LEASE_BUSY_RETRY_SECONDS = 15


@_task("run_crawl_request")
def run_crawl_request(self: Task, request_id: int) -> dict[str, Any]:
    """Expand a re-crawl request (:mod:`worker.pipeline.recrawl`) and enqueue its entries.

    While a scheduled poll holds the feed's lease, the request waits and tries again.
    """
    _bind(self, crawl_request_id=request_id)
    expansion = pipeline.expand_crawl_request(
        request_id,
        fetcher=get_fetcher(),
        settings=get_settings(),
        owner=str(self.request.id or f"recrawl-{request_id}"),
    )
    if expansion.poll is not None:
        task_metrics.metrics().record_poll(expansion.poll.status, expansion.poll.http_status)
    if expansion.status == "busy":
        raise self.retry(countdown=LEASE_BUSY_RETRY_SECONDS, max_retries=20)
    if expansion.status != "running":
        return {"status": expansion.status, "error": expansion.error}
    enqueue_entries(expansion.entry_ids, force=expansion.force)
    return {"status": "running", "entries": len(expansion.entry_ids)}


# The tasks that serve downstream apps (the change log, webhooks) and the metrics hook
# live in their own modules; importing them here registers them with this app.
from . import task_metrics, tasks_downstream  # noqa: E402, F401
