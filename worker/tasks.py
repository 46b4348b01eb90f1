"""Celery tasks: thin wrappers that load settings, call the pipeline, and enqueue.

Retry policy lives on the decorators: transient errors (timeouts, 5xx, 429, a
database that is briefly away) retry with exponential backoff and jitter;
permanent errors are recorded by the pipeline and never retried.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy.exc
import structlog
from celery import Task

from . import pipeline, store
from .celery_app import app
from .db import session_scope
from .errors import TransientError
from .fetch import Fetcher
from .models import utcnow
from .settings import get_settings

log = structlog.get_logger(__name__)

MAX_RETRIES = 5
STALE_PENDING_AFTER = timedelta(minutes=15)
RETRYABLE = (TransientError, sqlalchemy.exc.OperationalError)

_fetcher: Fetcher | None = None


def get_fetcher() -> Fetcher:
    """One HTTP client (connection pool) per worker process."""
    global _fetcher
    if _fetcher is None:
        _fetcher = Fetcher(pipeline.fetch_policy(get_settings()))
    return _fetcher


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
            session, older_than=now - STALE_PENDING_AFTER, limit=settings.due_batch_size
        )
        store.touch_entries(session, stale)
    for feed_id in feed_ids:
        poll_feed.delay(feed_id)
    for entry_id in stale:
        process_entry.delay(entry_id)
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
    for entry_id in outcome.new_entry_ids:
        process_entry.delay(entry_id, force=force)
    return {"status": outcome.status, "new": len(outcome.new_entry_ids)}


@app.task(
    bind=True,
    name="worker.tasks.process_entry",
    acks_late=True,
    autoretry_for=RETRYABLE,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def process_entry(self: Task, entry_id: int, force: bool = False) -> dict[str, Any]:
    _bind(self, entry_id=entry_id)
    outcome = pipeline.process_entry(
        entry_id=entry_id,
        fetcher=get_fetcher(),
        settings=get_settings(),
        force=force,
        final_attempt=self.request.retries >= MAX_RETRIES,
    )
    return {"status": outcome.status, "article_id": outcome.article_id, "action": outcome.action}


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
