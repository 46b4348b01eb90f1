"""Writer of ``feed_polls``: one row per poll, and the history read back from them.

The history (last full fetch, 304s since) is what the conditional-GET guard
uses to decide whether a run of 304s should be double-checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ..models import (
    FeedPoll,
)


def add_poll(session: Session, poll: FeedPoll) -> None:
    session.add(poll)


@dataclass(frozen=True)
class FetchHistory:
    """What the conditional-GET guard needs to know about a feed's recent polls."""

    last_full_fetch_at: datetime | None  # last poll that got a 200 body
    not_modified_since: int  # 304 answers since then


def fetch_history(session: Session, *, feed_id: int) -> FetchHistory:
    """Two small queries on ``ix_feed_polls_feed_started`` (feed_id, started_at)."""
    last_full = session.exec(
        select(FeedPoll.started_at)
        .where(col(FeedPoll.feed_id) == feed_id)
        .where(col(FeedPoll.status) == "ok")
        .order_by(col(FeedPoll.started_at).desc())
        .limit(1)
    ).first()
    query = (
        select(sa.func.count())
        .select_from(FeedPoll)
        .where(col(FeedPoll.feed_id) == feed_id)
        .where(col(FeedPoll.status) == "not_modified")
    )
    if last_full is not None:
        query = query.where(col(FeedPoll.started_at) > last_full)
    count = session.exec(query).one()
    return FetchHistory(last_full_fetch_at=last_full, not_modified_since=int(count or 0))


def delete_for_feed(session: Session, feed_id: int) -> None:
    """Forget a removed feed's polls."""
    session.execute(sa.delete(FeedPoll).where(col(FeedPoll.feed_id) == feed_id))
