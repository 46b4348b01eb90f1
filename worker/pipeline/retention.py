"""Retention of ``feed_polls``: the hourly prune beat starts (``prune_feed_polls``).

Without it ``feed_polls`` gains a row per poll for ever (about 1M a day at 10,000
feeds, docs/scaling.md). The rule lives in :func:`worker.store.polls.prune_polls`:
polls older than ``INGEST_FEED_POLLS_RETENTION_DAYS`` go, except each feed's newest
``ok`` poll and everything after it. This module only picks the cut-off, the batch
size and how long one run may take.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from .. import store
from ..db import session_scope
from ..settings import Settings

log = structlog.get_logger(__name__)

PRUNE_BATCH_ROWS = 5_000
"""Polls deleted per transaction: a few tens of milliseconds of PostgreSQL's time
(docs/scale-feeds.md), so a poll being recorded meanwhile waits at most that long for
SQLite's write lock, and no transaction holds many row locks."""


@dataclass(frozen=True)
class PollPrune:
    """What one prune run did: ``finished`` is false when it stopped at its time budget
    with (perhaps) more to delete, so the caller may run it again at once."""

    deleted: int
    finished: bool
    cutoff: datetime
    seconds: float


def prune_feed_polls(
    *,
    settings: Settings,
    now: datetime,
    time_budget: float | None = None,
    batch_size: int = PRUNE_BATCH_ROWS,
) -> PollPrune:
    """Delete the polls older than the retention (keeping each feed's newest ``ok`` poll
    and everything after it), in short transactions, for at most ``time_budget`` seconds.

    The budget keeps one run inside the task's time limit when a deployment that never
    pruned (or a long outage) leaves a large backlog: the run stops after a batch, and
    the rest waits for the next run, which repeats nothing already done. Idempotent;
    two runs at once delete each row once between them.
    """
    cutoff = now - timedelta(days=settings.feed_polls_retention_days)
    started = time.monotonic()
    deadline = None if time_budget is None else started + time_budget
    with session_scope() as session:
        deleted = store.prune_polls(
            session, older_than=cutoff, batch_size=batch_size, deadline=deadline
        )
    done = time.monotonic()
    finished = deadline is None or done < deadline
    result = PollPrune(deleted=deleted, finished=finished, cutoff=cutoff, seconds=done - started)
    log.info("feed_polls_pruned", rows=deleted, finished=finished,
             cutoff=cutoff.isoformat(), prune_ms=round(result.seconds * 1000, 1))  # fmt: skip
    return result
