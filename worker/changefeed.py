"""The change feed: pages of the change log with the rows as they are now, numbering of
newly committed changes, and retention.

One place for everyone who reads the log: ``GET /changes`` and ``ingest changes`` (through
:mod:`worker.operations`), the beat's ``maintain_change_log`` task, and whatever delivers
changes onwards. The log itself, and why it is gap-safe, is :mod:`worker.store.changes`.
No Celery, FastAPI or typer here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy.exc
import structlog

from . import store
from .db import session_scope
from .models import utcnow
from .schemas import ArticleOut, ChangeOut, ChangePage, FeedOut, StoryOut
from .store.changes import SEQUENCE_BATCH

log = structlog.get_logger(__name__)

READ_SEQUENCE_WAIT_MS = 1000
"""How long a reader waits to number pending changes before it reads what is numbered
already: on SQLite a long write transaction holds the one write lock."""

PRUNE_BATCH = 50_000
"""Positions one pruning transaction deletes at most."""


def parse_kinds(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"article,story"`` (or a list of such) as kinds; None or empty means every kind.

    Raises ValueError naming an unknown kind.
    """
    if value is None:
        return None
    parts = [value] if isinstance(value, str) else list(value)
    kinds = [k.strip() for part in parts for k in part.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in store.CHANGE_KINDS]
    if unknown:
        raise ValueError(
            f"unknown kind {unknown[0]!r} (use {', '.join(store.CHANGE_KINDS)}, comma-separated)"
        )
    return tuple(dict.fromkeys(kinds)) or None


def sequence_pending(*, wait_ms: int | None = None) -> int:
    """Number every committed change still without a position; returns how many rows
    were taken. With ``wait_ms``, give up (returning what was done) rather than wait
    longer for the lock: a reader then reads what is numbered, which is never a gap."""
    done = 0
    while True:
        with session_scope() as session:
            if not store.has_pending_changes(session):
                return done
        try:
            with session_scope() as session, store.lock_wait(session, wait_ms):
                taken = store.sequence_changes(session)
        except sqlalchemy.exc.OperationalError as exc:
            if wait_ms is None:
                raise
            log.info("change_log_sequencing_skipped", reason=str(exc.orig or exc)[:200])
            return done
        done += taken
        if taken < SEQUENCE_BATCH:
            return done


def read_page(
    *, after: int, limit: int, kinds: Sequence[str] | None = None, include_body: bool = False
) -> ChangePage:
    """Up to ``limit`` changes after position ``after``, each with its row as it is now.

    Numbers pending changes first, so a page includes everything committed before the
    call. Raises :class:`~worker.store.ResyncRequiredError` when ``after`` is not in
    the log (pruned, or beyond its end).
    """
    sequence_pending(wait_ms=READ_SEQUENCE_WAIT_MS)
    with session_scope() as session:
        batch = store.read_changes(session, after=after, limit=limit, kinds=kinds)
        rows = {
            kind: store.current_rows(
                session, kind, [c.entity_id for c in batch.changes if c.kind == kind]
            )
            for kind in store.CHANGE_KINDS
        }
        names = store.feed_names(session) if rows["article"] else {}
        changes = [
            ChangeOut.model_validate(
                {
                    "position": c.position,
                    "kind": c.kind,
                    "id": c.entity_id,
                    "op": c.op,
                    "changed_at": c.changed_at,
                    "row": _public(c.kind, rows[c.kind].get(c.entity_id), names, include_body),
                }
            )
            for c in batch.changes
        ]
    return ChangePage(changes=changes, next=batch.next, head=batch.head)


def _public(
    kind: str, row: Any, feed_names: dict[int, str], include_body: bool
) -> ArticleOut | StoryOut | FeedOut | None:
    if row is None:
        return None
    if kind == "article":
        return ArticleOut.of(row, feed_names, body=include_body)
    if kind == "story":
        return StoryOut.of(row)
    return FeedOut.model_validate(row)


def maintain(*, retention_days: float) -> dict[str, int]:
    """Number pending changes, then prune those older than ``retention_days``: the beat's
    periodic step, so the log is numbered for direct SQL readers and stays bounded."""
    positioned = sequence_pending()
    cutoff = utcnow() - timedelta(days=retention_days)
    pruned = 0
    while True:
        with session_scope() as session:
            deleted = store.prune_changes(session, older_than=cutoff, limit=PRUNE_BATCH)
            horizon, head = store.change_log_bounds(session)
        pruned += deleted
        if not deleted:
            break
    if pruned:
        log.info("change_log_pruned", rows=pruned, horizon=horizon, head=head)
    return {"positioned": positioned, "pruned": pruned, "horizon": horizon, "head": head}
