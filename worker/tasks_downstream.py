"""The tasks that serve downstream apps: numbering and pruning the change log
(:mod:`worker.changefeed`) and delivering webhooks (:mod:`worker.pipeline.webhooks`).

Thin wrappers like every task. They are registered under ``worker.tasks.*`` names
with the shared retry policy (:func:`worker.task_policy._task`); :mod:`worker.tasks` imports
this module, so the worker and beat find them where they always were.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from . import changefeed
from .fetch import WebhookPoster
from .settings import get_settings
from .task_policy import _task, app, beat_tick
from .tasks import _bind

# The change feed


@_task("maintain_change_log")
def maintain_change_log(self: Task) -> dict[str, int]:
    """Number new changes (for readers of the table) and prune past retention."""
    _bind(self)
    return changefeed.maintain(retention_days=get_settings().changes_retention_days)


# Webhooks (worker.pipeline.webhooks): beat finds subscriptions with new changes; one
# delivery run per subscription at a time sends them, in order.

_poster: WebhookPoster | None = None


def get_poster() -> WebhookPoster:
    """One webhook HTTP client (connection pool) per worker process."""
    global _poster
    if _poster is None:
        from .pipeline.webhooks import make_poster

        _poster = make_poster(get_settings())
    return _poster


@_task("dispatch_webhooks", retry_on=())
@beat_tick
def dispatch_webhooks(self: Task) -> int | None:
    """Start a delivery run for each subscription with changes past its position."""
    from .pipeline import webhooks

    _bind(self)
    due = webhooks.due_subscriptions()
    expires = max(5.0, get_settings().webhook_interval_seconds * 5)
    with app.producer_or_acquire() as producer, producer.batch():
        for subscription_id in due:
            # A stale message only finds the lease taken or nothing to send; it may go.
            deliver_webhooks.apply_async((subscription_id,), producer=producer, expires=expires)
    return len(due)


@_task("deliver_webhooks")
def deliver_webhooks(self: Task, subscription_id: int) -> dict[str, Any]:
    """Send a subscription's pending events, in order, until caught up or one fails.

    A failure is recorded on the subscription with when to try again (the backoff
    lives in the row, not in a countdown message, so it survives a broker restart);
    beat starts the next run once that time has come. The lease owner is unique to
    this run, so a redelivered copy of this message waits for the lease to run out.
    """
    import uuid

    from .pipeline import webhooks

    _bind(self, subscription_id=subscription_id)
    outcome = webhooks.deliver(
        subscription_id,
        poster=get_poster(),
        settings=get_settings(),
        owner=f"{self.request.id or 'local'}:{uuid.uuid4().hex[:12]}",
    )
    return {
        "status": outcome.status,
        "delivered": outcome.delivered,
        "failed": outcome.failed,
        "position": outcome.position,
    }
