"""Webhook delivery: the changes of the change log a subscription wants, POSTed to it
one at a time in log order, at least once.

One run (:func:`deliver`, the ``deliver_webhooks`` task) per subscription at a time:

1. take the subscription's lease, or leave at once if a live run holds it (two
   runs would race and could reorder events);
2. read the change feed after the subscription's position (which numbers newly
   committed changes first, :func:`worker.changefeed.read_page`), a page at a time;
3. for each change the filter wants, POST the signed event and, only on a 2xx,
   commit the position (and renew the lease) in its own transaction; changes it does
   not want just move the position along;
4. on a failure, record it with when to try again (exponential backoff held in the
   row, ``next_attempt_at``), pausing the subscription after
   ``webhook_max_failures`` in a row, and stop: the next run starts with that event.

A run killed anywhere leaves the position at the last accepted event, so the event
in flight is sent again with the same ``webhook-id``; nothing is skipped. The beat
(:func:`due_subscriptions`, every ``webhook_interval_seconds``) starts runs for
subscriptions with changes past their position, so no message has to survive for
delivery to resume after a crash, a broker restart or a backoff. No Celery here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from .. import changefeed, store, webhooks
from ..db import session_scope
from ..fetch import DeliveryResult, WebhookPoster
from ..models import utcnow
from ..settings import Settings

log = structlog.get_logger(__name__)

DUE_BATCH = 500
"""Subscriptions one beat tick starts at most."""


def lease_seconds(settings: Settings) -> float:
    """How long a run holds a subscription between two commits: longer than one POST
    can take (its deadline is twice the timeout, plus the last read), so a live run
    never loses its lease to another mid-request; short enough that a dead run's
    subscription is picked up again soon."""
    return 3 * settings.webhook_timeout_seconds + 5


def make_poster(settings: Settings) -> WebhookPoster:
    return WebhookPoster(
        timeout=settings.webhook_timeout_seconds,
        user_agent=settings.user_agent,
        allowed_networks=tuple(settings.allow_private_networks),
    )


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one run did: ``status`` is ``caught_up``, ``more`` (it used its time; beat
    starts the next run at once), ``failed``, ``paused`` (this
    run's failure paused it), ``busy`` (not due, or another run holds it), ``stopped``
    (the lease was lost or an operator paused it mid-run) or ``resync`` (the position
    was pruned from the log)."""

    status: str
    delivered: int = 0
    failed: int = 0
    position: int | None = None


def due_subscriptions() -> list[int]:
    """Active subscriptions with undelivered changes, not backing off, not being
    delivered: numbers new changes first, so a just-committed article counts."""
    with session_scope() as session:
        if not store.has_active_subscriptions(session):
            return []
    changefeed.sequence_pending(wait_ms=changefeed.READ_SEQUENCE_WAIT_MS)
    with session_scope() as session:
        _, head = store.change_log_bounds(session)
        return store.due_subscription_ids(session, now=utcnow(), head=head, limit=DUE_BATCH)


def deliver(
    subscription_id: int,
    *,
    poster: WebhookPoster,
    settings: Settings,
    owner: str,
    clock: Callable[[], datetime] = utcnow,
) -> DeliveryOutcome:
    """One delivery run for one subscription (see the module docstring)."""
    lease = lease_seconds(settings)
    with session_scope() as session:
        row = store.acquire_subscription_lease(
            session,
            subscription_id=subscription_id,
            owner=owner,
            now=clock(),
            lease_seconds=lease,
        )
        if row is None:
            return DeliveryOutcome("busy")
        url, secret, position = row.url, row.secret, row.position
        wanted = webhooks.Filter(kinds=tuple(row.kinds), label=row.label, topics=tuple(row.topics))
    run = _Run(subscription_id, owner=owner, lease=lease, clock=clock, settings=settings)
    try:
        return run.deliver(url=url, secret=secret, position=position, wanted=wanted, poster=poster)
    finally:
        with session_scope() as session:
            store.release_subscription_lease(session, subscription_id=subscription_id, owner=owner)


@dataclass
class _Run:
    subscription_id: int
    owner: str
    lease: float
    clock: Callable[[], datetime]
    settings: Settings
    delivered: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def out_of_time(self) -> bool:
        """A run stops well inside the task's time limit, so a subscription with a long
        backlog is never cut off mid-request by it; the next run picks up at once."""
        return time.monotonic() - self.started > self.settings.task_time_limit / 2

    def deliver(
        self,
        *,
        url: str,
        secret: str,
        position: int,
        wanted: webhooks.Filter,
        poster: WebhookPoster,
    ) -> DeliveryOutcome:
        while True:
            try:
                page = changefeed.read_page(
                    after=position, limit=self.settings.webhook_batch_size, kinds=wanted.kinds
                )
            except store.ResyncRequiredError as exc:
                return self._resync(exc, position)
            for change in page.changes:
                row = None if change.row is None else change.row.model_dump(mode="json")
                if not webhooks.matches(wanted, change.kind, row):
                    continue
                body = webhooks.event_body(
                    subscription_id=self.subscription_id,
                    position=change.position,
                    kind=change.kind,
                    entity_id=change.id,
                    op=change.op,
                    occurred_at=change.changed_at,
                    row=row,
                )
                msg_id = webhooks.event_id(self.subscription_id, change.position)
                signed = webhooks.headers(
                    secret, msg_id=msg_id, timestamp=int(time.time()), body=body
                )
                result = poster.post(url, body=body, headers=signed)
                if not result.ok:
                    return self._failed(result, before=change.position - 1, msg_id=msg_id)
                if not self._commit(change.position, result.status):
                    return DeliveryOutcome("stopped", self.delivered, 0, position)
                position = change.position
                self.delivered += 1
                log.info(
                    "webhook_delivered",
                    subscription_id=self.subscription_id,
                    webhook_id=msg_id,
                    position=change.position,
                    http_status=result.status,
                )
                if self.out_of_time:
                    return DeliveryOutcome("more", self.delivered, 0, position)
            if page.next > position:
                if not self._commit(page.next, None):
                    return DeliveryOutcome("stopped", self.delivered, 0, position)
                position = page.next
            if position >= page.head:
                return DeliveryOutcome("caught_up", self.delivered, 0, position)

    def _commit(self, position: int, http_status: int | None) -> bool:
        with session_scope() as session:
            return store.record_delivery(
                session,
                subscription_id=self.subscription_id,
                owner=self.owner,
                position=position,
                http_status=http_status,
                now=self.clock(),
                lease_seconds=self.lease,
            )

    def _failed(self, result: DeliveryResult, *, before: int, msg_id: str) -> DeliveryOutcome:
        """Keep what the filter skipped before the failed event, and record the failure."""
        settings = self.settings
        with session_scope() as session:
            store.record_delivery(
                session,
                subscription_id=self.subscription_id,
                owner=self.owner,
                position=before,
                http_status=None,
                now=self.clock(),
                lease_seconds=self.lease,
            )
            row = store.record_delivery_failure(
                session,
                subscription_id=self.subscription_id,
                owner=self.owner,
                error=result.error or "failed",
                http_status=result.status,
                now=self.clock(),
                retry_in=lambda failures: webhooks.backoff_seconds(
                    failures,
                    base=settings.webhook_retry_base_seconds,
                    maximum=settings.webhook_retry_max_seconds,
                ),
                max_failures=settings.webhook_max_failures,
            )
            paused = row is not None and row.state == "paused"
            failures = row.consecutive_failures if row is not None else None
        log.warning(
            "webhook_delivery_failed",
            subscription_id=self.subscription_id,
            webhook_id=msg_id,
            http_status=result.status,
            error_class=result.error_class,
            error=result.error,
            failures=failures,
            paused=paused,
        )
        status = "paused" if paused else "failed"
        return DeliveryOutcome(status, self.delivered, 1, before)

    def _resync(self, exc: store.ResyncRequiredError, position: int) -> DeliveryOutcome:
        """The position is no longer in the log: events may be lost, which only an
        operator can accept (``resume`` moves to the log's start), so pause."""
        with session_scope() as session:
            store.pause_subscription(session, self.subscription_id, reason=f"resync: {exc}")
        log.error("webhook_resync_required", subscription_id=self.subscription_id, error=str(exc))
        return DeliveryOutcome("resync", self.delivered, 0, position)
