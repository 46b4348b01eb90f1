"""Writer of ``change_log`` positions and of ``change_log_state``: the change feed.

Database triggers (migration 0003) append a row to ``change_log`` for every insert,
update or delete of an article, story or feed, inside the writer's transaction and
with no position. Ids of those rows are handed out when the row is written, not when
its transaction commits, so on PostgreSQL a lower id can become visible after a higher
one: a reader paging by id would skip it. This module therefore numbers rows itself,
in :func:`sequence_changes`:

- it runs under a lock (:func:`~worker.store.sql.take_lock`), so two runs never
  overlap and each starts after the previous one committed;
- it numbers only rows that are committed (the only ones it can see), continuing
  from the last position given out;
- readers (:func:`read_changes`) return positioned rows only.

So once a reader has seen position N, every position up to N is committed and
visible, and any later run gives out positions above N: a reader never later finds a
change below where it is. Retention (:func:`prune_changes`) deletes a prefix of the
log and records how far it went (the *horizon*); a reader asking from below it gets
:class:`ResyncRequiredError` instead of a silent gap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ..models import Article, Change, ChangeLogState, Feed, Story, UTCDateTime, utcnow
from .sql import table_of, take_lock

CHANGE_KINDS = ("article", "story", "feed")
"""What the log records changes of (``change_log.kind``)."""

CHANGE_LOCK = "change_log"
"""The named lock that serialises numbering and pruning."""

SEQUENCE_BATCH = 5_000
"""Unnumbered rows one :func:`sequence_changes` call takes: one transaction's worth."""

_MODELS: dict[str, Any] = {"article": Article, "story": Story, "feed": Feed}
_LOG = table_of(Change)
_STATE = table_of(ChangeLogState)


@dataclass(frozen=True)
class ChangeRecord:
    """One positioned change: where it is in the log, what changed and how."""

    position: int
    kind: str
    entity_id: int
    op: str
    changed_at: datetime


@dataclass(frozen=True)
class ChangeBatch:
    """A page of the log: its changes, the ``after`` for the next page, and the log's
    current end (``head``) and pruned prefix (``horizon``)."""

    changes: list[ChangeRecord]
    next: int
    head: int
    horizon: int


class ResyncRequiredError(Exception):
    """The reader's position is not in this log: retention pruned past it, or it is
    beyond the log's end (the database was restored or replaced). Reading on from it
    would skip changes, so the reader must rebuild its copy and restart from ``head``."""

    def __init__(self, *, after: int, horizon: int, head: int) -> None:
        self.after, self.horizon, self.head = after, horizon, head
        self.reason = "pruned" if after < horizon else "ahead"
        if self.reason == "pruned":
            why = (
                f"changes after position {after} were pruned by retention "
                f"(the log keeps positions after {horizon})"
            )
        else:
            why = f"position {after} is beyond the end of the log ({head})"
        super().__init__(
            f"{why}: resync — reload articles, stories and feeds, then follow from position {head}"
        )


Pending = tuple[int, str, int, str, datetime]
"""An unnumbered row: ``(id, kind, entity_id, op, changed_at)``."""


def coalesce(pending: Sequence[Pending]) -> tuple[list[tuple[int, str, datetime]], list[int]]:
    """Fold unnumbered rows, in id order, into one change per entity: the rows to number,
    as ``(id, op, changed_at)`` in id order, and the ids of the rows to drop.

    Readers get an entity's current row, so several pending changes of one entity say
    no more than one. The entity keeps its first row, so it comes no later in the log
    than where it first changed (a new story still precedes the article that made it,
    even when a later copy updated the story), with the time of its last change. The
    op is ``delete`` when the last change was one, else ``insert`` when any was (the
    row is new to a reader that saw none of these), else ``update``.
    """
    groups: dict[tuple[str, int], list[Pending]] = {}
    for row in pending:
        groups.setdefault((row[1], row[2]), []).append(row)
    kept: list[tuple[int, str, datetime]] = []
    dropped: list[int] = []
    for rows in groups.values():
        ops = [row[3] for row in rows]
        op = "delete" if ops[-1] == "delete" else "insert" if "insert" in ops else "update"
        kept.append((rows[0][0], op, rows[-1][4]))
        dropped.extend(row[0] for row in rows[1:])
    kept.sort()
    return kept, sorted(dropped)


def has_pending_changes(session: Session) -> bool:
    """Whether committed changes await a position (cheap, takes no lock)."""
    return session.execute(_ANY_PENDING).first() is not None


_ANY_PENDING = sa.select(_LOG.c.id).where(_LOG.c.position.is_(None)).limit(1)


@contextmanager
def lock_wait(session: Session, milliseconds: int | None) -> Iterator[None]:
    """Wait at most ``milliseconds`` for locks inside the block (None: the usual wait).

    A reader numbers pending changes before it reads, but must not hang behind a long
    write transaction (on SQLite, any writer holds the one write lock): it gives up
    and reads what is already numbered. PostgreSQL resets ``SET LOCAL`` at the end of
    the transaction; SQLite's busy timeout belongs to the connection and is put back.
    """
    if milliseconds is None:
        yield
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(sa.text(f"SET LOCAL lock_timeout = {int(milliseconds)}"))
        yield
        return
    from ..db import SQLITE_BUSY_TIMEOUT_MS

    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    _pragma(raw, f"busy_timeout = {int(milliseconds)}")
    try:
        yield
    finally:
        _pragma(raw, f"busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def _pragma(dbapi_connection: Any, setting: str) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA {setting}")
    finally:
        cursor.close()


def sequence_changes(session: Session, *, limit: int = SEQUENCE_BATCH) -> int:
    """Number up to ``limit`` committed, unnumbered changes; returns how many rows it took
    (kept or folded), so a caller knows to call again when that is ``limit``.

    Must be the transaction's first write: the lock comes first so that everything
    read after it (the last position, the pending rows) includes the previous run's
    commit (PostgreSQL's READ COMMITTED reads each statement afresh).
    """
    take_lock(session, CHANGE_LOCK)
    last = _last_position(session)
    pending = [
        (int(r.id), str(r.kind), int(r.entity_id), str(r.op), r.changed_at)
        for r in session.execute(_PENDING, {"limit": limit})
    ]
    if not pending:
        return 0
    kept, dropped = coalesce(pending)
    numbered = [
        {"row_id": row_id, "new_position": last + n, "new_op": op, "new_changed_at": when}
        for n, (row_id, op, when) in enumerate(kept, start=1)
    ]
    session.execute(_NUMBER, numbered)
    for start in range(0, len(dropped), 1000):
        session.execute(_DROP, {"ids": dropped[start : start + 1000]})
    session.execute(
        sa.update(_STATE).where(_STATE.c.id == 1).values(last_position=last + len(kept))
    )
    return len(pending)


_PENDING = (
    sa.select(_LOG.c.id, _LOG.c.kind, _LOG.c.entity_id, _LOG.c.op, _LOG.c.changed_at)
    .where(_LOG.c.position.is_(None))
    .order_by(_LOG.c.id)
    .limit(sa.bindparam("limit"))
)
_NUMBER = (
    sa.update(_LOG)
    .where(_LOG.c.id == sa.bindparam("row_id"))
    .values(
        position=sa.bindparam("new_position"),
        op=sa.bindparam("new_op"),
        changed_at=sa.bindparam("new_changed_at", type_=UTCDateTime()),
    )
)
_DROP = sa.delete(_LOG).where(_LOG.c.id.in_(sa.bindparam("ids", expanding=True)))


def _state(session: Session) -> tuple[int, int]:
    """``(last_position, horizon)``; the row is made by migration 0003."""
    row = session.execute(
        sa.select(_STATE.c.last_position, _STATE.c.horizon).where(_STATE.c.id == 1)
    ).one()
    return int(row.last_position), int(row.horizon)


def _last_position(session: Session) -> int:
    return _state(session)[0]


def change_log_bounds(session: Session) -> tuple[int, int]:
    """``(horizon, head)``: positions up to ``horizon`` were pruned; ``head`` is the last."""
    head, horizon = _state(session)
    return horizon, head


def read_changes(
    session: Session, *, after: int, limit: int, kinds: Sequence[str] | None = None
) -> ChangeBatch:
    """Up to ``limit`` numbered changes after position ``after``, oldest first (only of
    ``kinds`` when given), and the position to read after next time.

    Raises :class:`ResyncRequiredError` when ``after`` is below the pruned horizon or
    beyond the log's end. The order of the reads matters on PostgreSQL, where each
    statement sees what was committed when it began: the head is read first, so every
    position up to it is visible to the page query; the horizon is read after it, so a
    prune that removed rows this page should have held is seen and refused.
    """
    head = _last_position(session)
    query = _READ
    if kinds:
        query = query.where(_LOG.c.kind.in_(list(kinds)))
    rows = session.execute(query.limit(limit), {"after": after}).all()
    horizon = _state(session)[1]
    if after < horizon or after > head:
        raise ResyncRequiredError(after=after, horizon=horizon, head=head)
    changes = [
        ChangeRecord(
            position=int(r.position),
            kind=str(r.kind),
            entity_id=int(r.entity_id),
            op=str(r.op),
            changed_at=r.changed_at,
        )
        for r in rows
    ]
    if len(changes) == limit:
        following = changes[-1].position
    else:
        # Nothing else up to the head matched: a filtered reader moves past the rest.
        following = max(changes[-1].position if changes else after, head)
    return ChangeBatch(changes=changes, next=following, head=max(head, following), horizon=horizon)


_READ = (
    sa.select(_LOG.c.position, _LOG.c.kind, _LOG.c.entity_id, _LOG.c.op, _LOG.c.changed_at)
    .where(_LOG.c.position > sa.bindparam("after"))
    .order_by(_LOG.c.position)
)


def current_rows(session: Session, kind: str, ids: Sequence[int]) -> dict[int, Any]:
    """The rows of ``kind`` (an :class:`~worker.models.Article`, ``Story`` or ``Feed``)
    with these ids as they are now, by id; a deleted one is absent."""
    model = _MODELS[kind]
    if not ids:
        return {}
    found = session.exec(select(model).where(col(model.id).in_(sorted(set(ids))))).all()
    return {int(row.id): row for row in found}


def prune_changes(session: Session, *, older_than: datetime, limit: int) -> int:
    """Delete numbered changes from the start of the log up to the first one recorded at
    or after ``older_than`` (at most ``limit`` positions), and move the horizon there;
    returns how many rows went.

    The pruned part is always a prefix of positions, so a reader is either at or past
    the horizon and loses nothing, or before it and is told to resync.
    """
    take_lock(session, CHANGE_LOCK)
    head, horizon = _state(session)
    young = session.execute(
        sa.select(_LOG.c.position)
        .where(_LOG.c.position > horizon, _LOG.c.changed_at >= older_than)
        .order_by(_LOG.c.position)
        .limit(1)
    ).scalar()
    cut = min(head if young is None else int(young) - 1, horizon + limit)
    if cut <= horizon:
        return 0
    deleted = session.execute(
        sa.delete(_LOG).where(_LOG.c.position.is_not(None), _LOG.c.position <= cut)
    )
    session.execute(
        sa.update(_STATE).where(_STATE.c.id == 1).values(horizon=cut, pruned_at=utcnow())
    )
    return int(getattr(deleted, "rowcount", 0) or 0)
