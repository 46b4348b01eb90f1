"""An operator's re-crawl request (``ingest recrawl``, ``POST /recrawl``) expanded
into the entries to process, without Celery.

``feed``: poll the feed now (with ``force``: no conditional GET, and its current
items are fetched and extracted again); ``url``: the one entry made when the
request was recorded; ``since``: entries first seen since a date (with ``force``
also those already stored, else only pending or failed ones). Expanding twice
links the same entries again, which is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog

from .. import store
from ..db import session_scope
from ..fetch import Fetcher
from ..models import CrawlRequest
from ..settings import Settings
from .polling import PollOutcome, poll_feed

log = structlog.get_logger(__name__)


@dataclass
class Expansion:
    """What expanding a request came to.

    ``status``: ``running`` (``entry_ids`` are to be processed, with ``force``),
    ``failed`` (recorded on the request with ``error``), ``missing`` (no such
    request) or ``busy`` (a scheduled poll holds the feed: try again shortly).
    ``poll``: the feed poll it made, if any.
    """

    status: str
    entry_ids: list[int] = field(default_factory=list)
    force: bool = False
    error: str | None = None
    poll: PollOutcome | None = None


def expand_crawl_request(
    request_id: int, *, fetcher: Fetcher, settings: Settings, owner: str
) -> Expansion:
    """Find the request's entries (polling its feed first if it names one) and start it."""
    with session_scope() as session:
        request = session.get(CrawlRequest, request_id)
        if request is None:
            return Expansion(status="missing")
        kind, target, force = request.kind, request.target, request.force
        if request.status in ("done", "failed"):
            # A second delivery (acks_late redelivery, or beat's resend of a request that
            # looked lost) of a request that already ran: expanding it again would poll
            # the feed, find nothing new and overwrite its totals with zero.
            return Expansion(status=request.status, error=request.error)
        if request.status == "running":
            # Expanded before the first delivery died or was duplicated: hand out its
            # unfinished entries again (processing is idempotent), keep its totals.
            pending = store.entry_ids_for_request(session, request_id, pending_only=True)
            return Expansion(status="running", entry_ids=pending, force=force)
        feed = store.get_feed_by_name(session, target) if kind == "feed" else None
        feed_id = feed.id if feed is not None else None
    entry_ids: list[int] = []
    poll: PollOutcome | None = None
    if kind == "feed":
        if feed_id is None:
            return _failed(request_id, "no such feed")
        structlog.contextvars.bind_contextvars(feed_id=feed_id, feed=target)
        poll = poll_feed(
            feed_id=feed_id, fetcher=fetcher, settings=settings, owner=owner, force=force
        )
        if poll.status == "skipped":  # a scheduled poll holds the feed's lease
            return Expansion(status="busy", poll=poll)
        if poll.status == "error":
            failed = _failed(request_id, poll.error or "poll failed")
            failed.poll = poll
            return failed
        entry_ids = list(poll.new_entry_ids)
        if force:
            with session_scope() as session:
                entry_ids += store.recent_feed_entry_ids(
                    session, feed_id=feed_id, limit=max(poll.entries_seen, 1)
                )
    with session_scope() as session:
        if kind == "url":
            entry_ids = store.entry_ids_for_request(session, request_id)
        elif kind == "since":
            entry_ids = store.entry_ids_since(
                session, since=datetime.fromisoformat(target), include_stored=force
            )
        entry_ids = sorted(set(entry_ids))
        store.start_crawl_request(session, request_id=request_id, entry_ids=entry_ids)
    log.info("crawl_request_started", kind=kind, target=target, entries=len(entry_ids))
    return Expansion(status="running", entry_ids=entry_ids, force=force, poll=poll)


def _failed(request_id: int, reason: str) -> Expansion:
    with session_scope() as session:
        store.fail_crawl_request(session, request_id=request_id, reason=reason)
    return Expansion(status="failed", error=reason)
