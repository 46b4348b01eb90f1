"""The one retry policy every task shares, and how beat's periodic tasks meet an outage.

Split from :mod:`worker.tasks` so the policy reads in one place: ``acks_late`` and
redelivery, at most :data:`MAX_RETRIES` retries after :func:`retry_countdown` (never
sooner than ``retry_base_seconds``, :mod:`worker.backoff`), and :func:`beat_tick` for
the tasks beat sends every tick. Tasks register through :func:`_task`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
import structlog
from celery import Task

from .backoff import retry_delay
from .celery_app import get_app
from .errors import TransientError
from .settings import get_settings

log = structlog.get_logger(__name__)

app = get_app()

MAX_RETRIES = 5
RETRY_BACKOFF_MAX = 600
"""Seconds: the longest backoff of any task's retry (a batch's entries sent on alone too)."""
RETRYABLE = (TransientError, sqlalchemy.exc.OperationalError)
DATABASE_AWAY = (sqlalchemy.exc.OperationalError,)
MAX_DEFERRALS = 12
"""Times an entry is held back for a paused host (an hour at the default 5-minute pause)
before a refusal counts as a failed attempt, like any transient error."""


class PolicyTask(Task):  # type: ignore[misc]
    """The base of every task: a retry that names no countdown gets the shared backoff."""

    def retry(self, *args: Any, countdown: float | None = None, **options: Any) -> Any:
        if countdown is None and options.get("eta") is None:
            countdown = retry_countdown(options.get("exc"), self.request.retries)
        return super().retry(*args, countdown=countdown, **options)


def _task(
    name: str, *, retry_on: tuple[type[BaseException], ...] = DATABASE_AWAY, **options: Any
) -> Callable[[Callable[..., Any]], Task]:
    """Register a task with the one retry policy every task shares.

    ``acks_late``: a task is acknowledged when it ends, so a worker killed
    mid-task leaves it to be redelivered (the tasks are idempotent).
    ``retry_on``: the exceptions Celery retries by itself, at most
    :data:`MAX_RETRIES` times, each after :func:`retry_countdown` (Celery's own
    ``retry_backoff`` is off: its full jitter can retry at once); ``()`` for a
    task that handles its own. ``base`` defaults to :class:`PolicyTask`.
    """
    options.setdefault("base", PolicyTask)
    decorator: Callable[[Callable[..., Any]], Task] = app.task(
        bind=True,
        name=f"worker.tasks.{name}",
        acks_late=True,
        autoretry_for=retry_on,
        retry_backoff=False,
        max_retries=MAX_RETRIES,
        **options,
    )
    return decorator


def retry_countdown(exc: BaseException | None, retries: int) -> float:
    """The wait before retry number ``retries + 1``: the shared exponential backoff from
    ``retry_base_seconds``, or the server's (or our limiter's) Retry-After when longer."""
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    return retry_delay(
        retries,
        base=get_settings().retry_base_seconds,
        cap=RETRY_BACKOFF_MAX,
        retry_after=retry_after,
    )


def beat_tick(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A periodic task that meets a database that is away skips this tick.

    Beat sends the next tick within seconds, so there is nothing to retry and
    nothing lost; what is worth saying is one warning line, not an error with a
    traceback every tick for as long as the outage lasts (the chaos soak,
    bench/soak.py, counted one per second per task during a PostgreSQL restart).
    """

    @functools.wraps(fn)
    def run(self: Task, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except DATABASE_AWAY as exc:
            first_line = (str(exc.orig) if exc.orig is not None else str(exc)).splitlines()
            log.warning("tick_skipped_database_away", task=self.name,
                        error=(first_line or ["?"])[0][:200])  # fmt: skip
            return None

    return run
