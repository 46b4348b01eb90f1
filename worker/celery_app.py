"""The Celery application: broker, reliability settings and the beat schedule.

Reliability choices, each for a failure we expect:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged
  only after it finished, so a worker killed mid-task (OOM, SIGKILL, deploy)
  leaves the message to be redelivered; the tasks are idempotent, so running
  one twice is harmless.
- ``worker_prefetch_multiplier = 1``: a worker does not hoard messages it
  cannot start, which would delay them behind a slow page.
- time limits: a page that makes extraction hang is killed, not waited on;
  the soft limit lets the task record the entry as failed (``timeout``), and
  an attempts cap (``max_entry_attempts``) ends redelivery loops.
- a dead worker's unacknowledged tasks come back after the visibility timeout
  (``broker_visibility_timeout``); beat re-enqueues entries whose message was
  lost altogether (a Redis restart without persistence) after
  ``stale_pending_seconds``.
- ``worker_max_tasks_per_child``: bounds memory growth from HTML parsing.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from .kombu_guard import guard_lost_broker_connection
from .logging import configure_logging
from .settings import Settings, get_settings

PRUNE_FEED_POLLS_SECONDS = 3600.0
"""How often beat runs ``prune_feed_polls`` (the retention of ``feed_polls``): hourly, so
each run deletes about an hour of polls, in well under a second at 10,000 feeds
(docs/scale-feeds.md). Not a setting: the retention (days) is the knob."""


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    guard_lost_broker_connection()
    app = Celery("worker", broker=settings.broker_url, include=["worker.tasks"])
    conf: dict[str, Any] = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        # The soft limit leaves the task time to record the entry as failed.
        "task_soft_time_limit": max(
            settings.task_time_limit - 10, settings.task_time_limit * 3 // 4
        ),
        # Pool children are replaced when their memory grows (trafilatura and
        # lxml may keep what a huge page made them allocate), and after many
        # entries as a backstop, not every few hundred: each replacement leaves
        # its slot empty for about a second (billiard's exiting child sleeps
        # until it is reaped), a measurable loss at 500 entries per child
        # (docs/benchmark.md). A task is a batch of entries.
        "worker_max_tasks_per_child": max(
            1, settings.child_max_entries // settings.entry_batch_size
        ),
        # billiard reads the child's peak RSS (getrusage) after each task, in KiB.
        "worker_max_memory_per_child": settings.child_max_memory_mb * 1024,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": settings.result_backend is None,
        "broker_connection_retry_on_startup": True,
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        # Our structlog JSON lines go to stderr as they are, not re-logged by Celery.
        "worker_redirect_stdouts": False,
        # Celery's PersistentScheduler minus a busy wait before each due task
        # (worker/beat_scheduler.py).
        "beat_scheduler": "worker.beat_scheduler:Scheduler",
        "beat_schedule": {
            "poll-due-feeds": {
                "task": "worker.tasks.poll_due_feeds",
                "schedule": settings.beat_interval_seconds,
                "options": {"expires": settings.beat_interval_seconds * 2},
            },
            "maintain-change-log": {
                "task": "worker.tasks.maintain_change_log",
                "schedule": settings.changes_interval_seconds,
                "options": {"expires": settings.changes_interval_seconds * 2},
            },
            "prune-feed-polls": {
                "task": "worker.tasks.prune_feed_polls",
                "schedule": PRUNE_FEED_POLLS_SECONDS,
                # A run that waited an hour in the queue is replaced by the next one.
                "options": {"expires": PRUNE_FEED_POLLS_SECONDS},
            },
            "dispatch-webhooks": {
                "task": "worker.tasks.dispatch_webhooks",
                "schedule": settings.webhook_interval_seconds,
                "options": {"expires": max(2.0, settings.webhook_interval_seconds * 2)},
            },
        },
    }
    if settings.result_backend:
        conf["result_backend"] = settings.result_backend
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # A message not acknowledged within this time is redelivered (this is
        # how a SIGKILLed worker's tasks come back); it must exceed the longest
        # task and the longest retry countdown, or those would run twice.
        visibility = settings.broker_visibility_timeout or max(settings.task_time_limit * 3, 600)
        conf["broker_transport_options"] = {
            "visibility_timeout": visibility,
            # kombu scans for timed-out messages only every interval x throttle
            # seconds (100 s by default); keep that well under the timeout.
            "unacked_restore_interval": max(1, min(10, visibility // 5)),
            "unacked_restore_throttle": 1,
        }
    app.conf.update(conf)
    return app


@functools.cache
def get_app() -> Celery:
    """The process's Celery app, built on first use from the settings of that moment.

    Not built at import: the CLI and the API import this package's modules
    without wanting a broker connection, and tests set ``INGEST_*`` before the
    first task is sent. :mod:`worker.tasks` registers its tasks on this app.
    """
    return make_celery()


def __getattr__(name: str) -> Any:
    """``worker.celery_app.app`` (what ``celery -A worker.celery_app`` looks for) is
    :func:`get_app`, built when first asked for."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@worker_process_init.connect
def _reset_connections_after_fork(**_kwargs: Any) -> None:
    """Forked pool processes must not share the parent's DB connections."""
    from .db import dispose_engines

    dispose_engines()


_WARM_UP_PAGE = (
    "<html><head><title>Warm-up</title></head><body><article><h1>Warm-up</h1>"
    + "<p>Ukrainian air defence shot down drones over Kyiv overnight, officials said,"
    " while talks on security guarantees continued in Brussels.</p>"
    * 12
    + "</article></body></html>"
)


@worker_init.connect
def _warm_up_before_fork(**_kwargs: Any) -> None:
    """Load the extraction and classification models once, before the pool forks.

    The first extraction in a process is slow (language model, lazy imports).
    Done here, every pool child, including the ones replaced under
    ``worker_max_tasks_per_child`` or ``worker_max_memory_per_child``, starts
    warm and shares those pages copy-on-write instead of loading its own copy
    (docs/benchmark.md measures both).

    Then everything loaded so far (Celery, SQLAlchemy, trafilatura, the
    classifier's tables) is moved out of the garbage collector's reach with
    :func:`gc.freeze`. Those objects live as long as the process, yet every
    full collection in every child would walk them and, touching their
    headers, copy their pages.

    With ``INGEST_CLASSIFIER=neighbours`` this also loads the sentence-embedding
    model once, shared by the children. Every weights file the configured
    method reads (the English and Ukrainian/Russian stages', and the neighbour stage's
    when it is enabled) is loaded and checksum-verified first; a damaged file stops the
    worker at start.
    """
    import gc

    import structlog

    from .classify.neighbours import NeighboursUnavailableError
    from .classify.weights import ModelFileError

    try:
        from .classify import classify, load_models
        from .extract import extract_article
        from .settings import get_settings

        method = get_settings().classifier
        load_models(method)
        extracted = extract_article(_WARM_UP_PAGE, url="https://example.org/warm-up")
        classify(
            title="Warm-up",
            body=extracted.body if extracted else "",
            language="en",
            method=method,
        )
    except (NeighboursUnavailableError, ModelFileError):
        raise  # a configured method that cannot run: stop now, not on every article
    except Exception as exc:  # any other failed warm-up must never stop the worker
        structlog.get_logger(__name__).warning("warm_up_failed", error=str(exc))
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
