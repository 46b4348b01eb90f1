"""Writer of ``crawl_requests``: who asked to re-crawl what, and how far it got.

The request row says who asked for what; its entries (linked by
``entries.crawl_request_id``) say how far it got, counted when someone reads
the request rather than on the hot task path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ..errors import ERROR_TEXT_MAX_CHARS
from ..models import (
    CrawlRequest,
    Entry,
    utcnow,
)
from . import entries


def create_crawl_request(
    session: Session, *, requested_by: str, kind: str, target: str, force: bool
) -> CrawlRequest:
    request = CrawlRequest(requested_by=requested_by, kind=kind, target=target, force=force)
    session.add(request)
    session.flush()
    return request


def start_crawl_request(session: Session, *, request_id: int, entry_ids: Sequence[int]) -> None:
    """Link entries to the request, mark them to be processed again, and start it."""
    now = utcnow()
    ids = sorted(set(entry_ids))
    entries.link_to_request(session, entry_ids=ids, request_id=request_id)
    session.execute(
        sa.update(CrawlRequest)
        .where(col(CrawlRequest.id) == request_id)
        .values(status="running" if ids else "done", total=len(ids),
                finished_at=None if ids else now)
    )  # fmt: skip


def fail_crawl_request(session: Session, *, request_id: int, reason: str) -> None:
    """Mark a request failed *with its reason*: an operator polling
    ``GET /crawl-requests/N`` or ``ingest crawl-requests N`` must see why, not only that."""
    session.execute(
        sa.update(CrawlRequest)
        .where(col(CrawlRequest.id) == request_id)
        .values(status="failed", finished_at=utcnow(), error=reason[:ERROR_TEXT_MAX_CHARS])
    )
    import structlog

    structlog.get_logger(__name__).warning(
        "crawl_request_failed", crawl_request_id=request_id, reason=reason
    )


def crawl_request_progress(session: Session, request_id: int) -> CrawlRequest | None:
    """Recount a request's entries by status, store the counts, and return the row.

    The request is ``done`` once none of its entries is pending; counting on
    read (by the CLI, the API) keeps the hot task path free of bookkeeping.
    """
    request = session.get(CrawlRequest, request_id)
    if request is None:
        return None
    if request.status not in ("running", "queued"):
        return request
    counts = {
        str(s): int(c)
        for s, c in session.execute(
            sa.select(col(Entry.status), sa.func.count())
            .where(col(Entry.crawl_request_id) == request_id)
            .group_by(col(Entry.status))
        ).all()
    }
    request.done = counts.get("stored", 0)
    request.failed = counts.get("failed", 0)
    if request.status == "running":
        request.total = max(request.total, sum(counts.values()))
        if counts.get("pending", 0) == 0:
            request.status = "done"
            request.finished_at = utcnow()
    session.add(request)
    session.flush()
    return request


def queued_crawl_request_ids(
    session: Session, *, older_than: datetime | None = None, limit: int | None = None
) -> list[int]:
    """Requests recorded but never expanded (still ``queued``), oldest first.

    ``run_crawl_request`` moves a request on (to ``running`` or a final state) as its
    first write, seconds after it is sent, so one still queued since before
    ``older_than`` lost its message: a Redis restart, or a restore that left the old
    queue behind. Beat sends those again, as it does stranded entries (expanding a
    request twice links the same entries again, which is harmless).
    """
    query = select(CrawlRequest.id).where(col(CrawlRequest.status) == "queued")
    if older_than is not None:
        query = query.where(col(CrawlRequest.requested_at) < older_than)
    rows = session.exec(query.order_by(col(CrawlRequest.id)).limit(limit)).all()
    return [int(r) for r in rows if r is not None]


def list_crawl_requests(session: Session, *, limit: int = 20) -> list[CrawlRequest]:
    return list(
        session.exec(select(CrawlRequest).order_by(col(CrawlRequest.id).desc()).limit(limit)).all()
    )
