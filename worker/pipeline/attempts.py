"""The attempts cap: how many times an entry may be started before we give up on it.

Why a cap: a page that kills its worker process (a parser crash, memory blown)
comes back as a *redelivered* message, forever, unless something counts. So an
attempt is counted when it starts, and past ``max_entry_attempts`` the entry is
recorded as failed (``attempts_exhausted``) instead of being tried again.

A first delivery cannot be part of a loop yet, so, where the broker flags the
messages it puts back (Redis), it skips the count-at-start write and counts
itself in the write that stores or fails the entry; on SQLite that saves a
second turn at the database write lock per entry (``bench/run.py``). On other
transports we cannot tell a redelivery from a first delivery, so every attempt
counts at start there.
"""

from __future__ import annotations

import sqlalchemy.exc
import structlog

from .. import store
from ..db import session_scope
from ..models import Entry
from ..settings import Settings
from .entries import Delivery, EntryOutcome

log = structlog.get_logger(__name__)


def broker_marks_redelivery(settings: Settings) -> bool:
    """Whether a message put back by the broker arrives flagged ``redelivered``
    (Redis flags what it restores after a lost worker or an expired visibility timeout)."""
    return settings.broker_url.startswith(("redis://", "rediss://"))


def counted_at_start(*, force: bool, repeat: bool, settings: Settings) -> bool:
    """Whether this attempt must be counted before it starts (see the module docstring).

    ``repeat``: a retry, or a message put back after its worker was lost.
    """
    return force or repeat or not broker_marks_redelivery(settings)


def start_attempt(
    entry_id: int,
    *,
    force: bool,
    repeat: bool,
    final_attempt: bool,
    settings: Settings,
    can_defer: bool = False,
) -> Delivery | EntryOutcome:
    """Count the attempt if it must be counted now; past the cap, give up.

    Returns the :class:`Delivery` to process the entry with, or the outcome of
    giving up. An operator's forced re-crawl is never capped. ``can_defer``: the
    caller defers the entry if its host turns out to be paused (:func:`defer_attempt`).
    """
    counted = counted_at_start(force=force, repeat=repeat, settings=settings)
    if counted:
        with session_scope() as session:
            attempts = store.begin_entry_attempt(
                session, entry_id=entry_id, at_least=2 if repeat else 1
            )
        if attempts is not None and attempts > settings.max_entry_attempts and not force:
            return give_up(
                entry_id,
                error=f"gave up after {attempts - 1} attempts",
                error_class="attempts_exhausted",
            )
    return Delivery(
        force=force, final_attempt=final_attempt, count_attempt=not counted, can_defer=can_defer
    )


def count_failed_attempt(entry_id: int, delivery: Delivery) -> None:
    """Count an uncounted attempt that ends in an error the queue retries (best effort)."""
    if not delivery.count_attempt:
        return
    try:
        with session_scope() as session:
            store.begin_entry_attempt(session, entry_id=entry_id)
    except sqlalchemy.exc.OperationalError:
        pass  # the database is away: the retry, counted at its start, still counts


def defer_attempt(entry_id: int, delivery: Delivery, *, reason: str) -> None:
    """The entry's host is paused (a 429, or its circuit breaker): this attempt never
    reached the host, so it is not an attempt.

    Takes back the count if it was counted at its start, notes why on the entry, and
    touches it, so beat's stale-entry sweep leaves it to its deferred message.
    """
    with session_scope() as session:
        store.defer_entry(
            session, entry_id=entry_id, reason=reason, uncount=not delivery.count_attempt
        )


def give_up(
    entry_id: int, *, error: str, error_class: str, count_attempt: bool = False
) -> EntryOutcome:
    """Record the entry as failed for good, unless another delivery stored it meanwhile."""
    with session_scope() as session:
        entry = session.get(Entry, entry_id)
        if entry is None or entry.status == "stored":  # another delivery got there first
            return EntryOutcome(
                entry_id=entry_id,
                status="skipped",
                article_id=entry.article_id if entry is not None else None,
            )
        store.mark_entry_failed(
            session,
            entry_id=entry_id,
            error=error,
            error_class=error_class,
            count_attempt=count_attempt,
        )
    log.warning("entry_failed", entry_id=entry_id, error=error, error_class=error_class)
    return EntryOutcome(entry_id=entry_id, status="failed", error=error)
