"""Writer of ``subscriptions``: webhook subscribers, their position in the change log,
their delivery lease and their health.

Two rules make delivery ordered and at-least-once (:mod:`worker.pipeline.webhooks`):

- one delivery at a time per subscription: a run takes the row's lease
  (:func:`acquire_subscription_lease`), held for a bounded time and renewed with every
  event, so a run that dies frees it when it runs out;
- the position moves only after the subscriber accepted the event, and only by the
  lease holder (:func:`record_delivery`), one commit per event: a run killed between
  the POST and the commit sends that event again, with the same key, and never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ..errors import ERROR_TEXT_MAX_CHARS
from ..models import Subscription, utcnow

ACTIVE, PAUSED = "active", "paused"
STATES = (ACTIVE, PAUSED)


def create_subscription(
    session: Session,
    *,
    url: str,
    label: str | None,
    topics: Sequence[str],
    kinds: Sequence[str],
    secret: str,
    position: int,
) -> Subscription:
    """A new active subscription that will receive changes after ``position``."""
    row = Subscription(
        url=url,
        label=label,
        topics=list(topics),
        kinds=list(kinds),
        secret=secret,
        position=position,
    )
    session.add(row)
    session.flush()
    return row


def get_subscription(session: Session, subscription_id: int) -> Subscription | None:
    return session.get(Subscription, subscription_id)


def list_subscriptions(session: Session) -> list[Subscription]:
    return list(session.exec(select(Subscription).order_by(col(Subscription.id))).all())


def remove_subscription(session: Session, subscription_id: int) -> bool:
    deleted = session.execute(
        sa.delete(Subscription).where(col(Subscription.id) == subscription_id)
    )
    return bool(getattr(deleted, "rowcount", 0))


def pause_subscription(
    session: Session, subscription_id: int, *, reason: str | None = None
) -> Subscription | None:
    """Stop delivering (an operator's pause keeps the last error as it was)."""
    row = session.get(Subscription, subscription_id)
    if row is None:
        return None
    if row.state != PAUSED:
        now = utcnow()
        row.state, row.paused_at, row.updated_at = PAUSED, now, now
        if reason is not None:
            row.last_error = reason[:ERROR_TEXT_MAX_CHARS]
    session.flush()
    return row


def resume_subscription(
    session: Session, subscription_id: int, *, horizon: int, head: int
) -> tuple[Subscription | None, int]:
    """Deliver again from the position, at once; returns the row and how many positions
    were skipped (non-zero only when retention pruned past the position, or the log was
    replaced and the position is beyond its end: the only cases where resuming cannot
    carry on exactly where delivery stopped)."""
    row = session.get(Subscription, subscription_id)
    if row is None:
        return None, 0
    skipped = 0
    if row.position < horizon:
        skipped, row.position = horizon - row.position, horizon
    elif row.position > head:
        row.position = head
    row.state, row.paused_at, row.next_attempt_at = ACTIVE, None, None
    row.consecutive_failures = 0
    row.updated_at = utcnow()
    session.flush()
    return row, skipped


def acquire_subscription_lease(
    session: Session, *, subscription_id: int, owner: str, now: datetime, lease_seconds: float
) -> Subscription | None:
    """Take the subscription's delivery lease if it is active, due and not held by a live
    run; the row, or None. A single conditional UPDATE, so of two workers racing for it
    exactly one wins on either database."""
    taken = session.execute(
        sa.update(Subscription)
        .where(col(Subscription.id) == subscription_id)
        .where(col(Subscription.state) == ACTIVE)
        .where(*_due_and_free(now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
    )
    if not getattr(taken, "rowcount", 0):
        return None
    row = session.get(Subscription, subscription_id)
    if row is not None:
        session.refresh(row)
    return row


def _due_and_free(now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """Not waiting out a backoff, and no live run holds the lease."""
    retry_at, lease_until = col(Subscription.next_attempt_at), col(Subscription.lease_until)
    return (
        sa.or_(retry_at.is_(None), retry_at <= now),
        sa.or_(lease_until.is_(None), lease_until < now),
    )


def release_subscription_leases(session: Session) -> int:
    """Free every delivery lease (after a restore: the runs that held them are gone, and
    delivery would otherwise wait for the leases to run out); how many were held."""
    released = session.execute(
        sa.update(Subscription)
        .where(col(Subscription.lease_owner).is_not(None))
        .values(lease_owner=None, lease_until=None)
    )
    return int(getattr(released, "rowcount", 0) or 0)


def release_subscription_lease(session: Session, *, subscription_id: int, owner: str) -> None:
    session.execute(
        sa.update(Subscription)
        .where(col(Subscription.id) == subscription_id)
        .where(col(Subscription.lease_owner) == owner)
        .values(lease_owner=None, lease_until=None)
    )


def record_delivery(
    session: Session,
    *,
    subscription_id: int,
    owner: str,
    position: int,
    http_status: int | None,
    now: datetime,
    lease_seconds: float,
) -> bool:
    """Move the position to ``position`` (an accepted event, or the end of changes the
    filter skipped) and renew the lease; ``http_status`` None means nothing was sent.

    Only while ``owner`` holds the lease and the subscription is active; False
    otherwise (the lease ran out or an operator paused it), and the run must stop.
    """
    values: dict[str, object] = {
        "position": position,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
    }
    if http_status is not None:
        values.update(
            consecutive_failures=0,
            last_http_status=http_status,
            last_attempt_at=now,
            last_success_at=now,
            last_error=None,
            next_attempt_at=None,
        )
    moved = session.execute(
        sa.update(Subscription)
        .where(col(Subscription.id) == subscription_id)
        .where(col(Subscription.lease_owner) == owner)
        .where(col(Subscription.state) == ACTIVE)
        .where(col(Subscription.position) <= position)
        .values(**values)
    )
    return bool(getattr(moved, "rowcount", 0))


def record_delivery_failure(
    session: Session,
    *,
    subscription_id: int,
    owner: str,
    error: str,
    http_status: int | None,
    now: datetime,
    retry_in: Callable[[int], float],
    max_failures: int,
) -> Subscription | None:
    """Count a failed attempt, set when to try again (``retry_in(failures in a row)``
    seconds from now), and pause the subscription at
    ``max_failures`` in a row; releases the lease. The row, or None if the lease was
    lost (then another run owns the subscription's health)."""
    row = session.get(Subscription, subscription_id)
    if row is None or row.lease_owner != owner:
        return None
    row.consecutive_failures += 1
    row.last_error = error[:ERROR_TEXT_MAX_CHARS]
    row.last_http_status = http_status
    row.last_attempt_at = row.updated_at = now
    row.next_attempt_at = now + timedelta(seconds=retry_in(row.consecutive_failures))
    row.lease_owner = row.lease_until = None
    if row.consecutive_failures >= max_failures and row.state == ACTIVE:
        row.state, row.paused_at = PAUSED, now
    session.flush()
    return row


def due_subscription_ids(session: Session, *, now: datetime, head: int, limit: int) -> list[int]:
    """Active subscriptions with changes beyond their position, not waiting out a
    backoff and not being delivered: the beat's cheap check, every second."""
    query = (
        select(Subscription.id)
        .where(col(Subscription.state) == ACTIVE)
        .where(col(Subscription.position) < head)
        .where(*_due_and_free(now))
        .order_by(col(Subscription.id))
        .limit(limit)
    )
    return [int(i) for i in session.exec(query).all() if i is not None]


def has_active_subscriptions(session: Session) -> bool:
    query = select(Subscription.id).where(col(Subscription.state) == ACTIVE).limit(1)
    return session.exec(query).first() is not None


def subscription_counts(session: Session) -> dict[str, int]:
    """Subscriptions per state (``ingest stats``, the ``ingest_db_subscriptions`` gauge)."""
    rows = session.execute(
        sa.select(col(Subscription.state), sa.func.count()).group_by(col(Subscription.state))
    ).all()
    return {str(state): int(count) for state, count in rows}
