"""Beat's claim of due feeds (``pipeline.claim_due_feeds``), on SQLite and PostgreSQL.

One claim of ``due_batch_size`` per tick capped polling at 8.3 polls/s at the defaults,
below what 10,000 feeds need (docs/scale-feeds.md). A tick now claims again while whole
batches come back. These tests hold the claim to what beat relies on: more than one
batch per tick, at most ``due_claims_per_tick``, never a feed claimed twice by ticks
that run at once, and feeds that are not due (or disabled) left alone.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from worker import pipeline, store
from worker.db import session_scope
from worker.models import Feed, utcnow
from worker.settings import Settings, get_settings, reset_settings

pytestmark = pytest.mark.integration


def _settings(monkeypatch: pytest.MonkeyPatch, *, batch: int, claims: int) -> Settings:
    monkeypatch.setenv("INGEST_DUE_BATCH_SIZE", str(batch))
    monkeypatch.setenv("INGEST_DUE_CLAIMS_PER_TICK", str(claims))
    reset_settings()
    return get_settings()


def _add_feeds(*, due: int, later: int = 0, disabled: int = 0) -> datetime:
    """Feeds due a minute ago, due in an hour, and disabled but overdue; returns now."""
    now = utcnow()

    def row(name: str, next_poll_at: datetime, enabled: bool = True) -> dict[str, object]:
        return {"name": name, "url": f"https://{name}.example/rss", "tags": [],
                "enabled": enabled, "state": "healthy", "conditional_get": True,
                "error_count": 0, "next_poll_at": next_poll_at,
                "created_at": now, "updated_at": now}  # fmt: skip

    rows = [row(f"due{n}", now - timedelta(seconds=60 + n)) for n in range(due)]
    rows += [row(f"later{n}", now + timedelta(hours=1)) for n in range(later)]
    rows += [row(f"off{n}", now - timedelta(hours=1), False) for n in range(disabled)]
    with session_scope() as session:
        session.execute(sa.insert(Feed), rows)
    return now


def _next_polls() -> dict[str, datetime | None]:
    with session_scope() as session:
        return {f.name: f.next_poll_at for f in session.exec(select(Feed)).all()}


def _change_count() -> int:
    with session_scope() as session:
        return int(session.execute(sa.text("SELECT count(*) FROM change_log")).scalar_one())


def test_a_tick_claims_several_batches_and_leaves_the_rest_alone(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 due feeds, batches of 3: one tick claims all 10 in 4 claims; feeds due later
    or disabled keep their next poll time, and no claim is a change-feed row."""
    settings = _settings(monkeypatch, batch=3, claims=4)
    now = _add_feeds(due=10, later=4, disabled=3)
    before = _next_polls()
    changes = _change_count()

    claim = pipeline.claim_due_feeds(settings=settings, now=now)

    assert claim.claims == 4
    assert len(claim.feed_ids) == len(set(claim.feed_ids)) == 10
    assert claim.claim_ms > 0
    after = _next_polls()
    with session_scope() as session:
        claimed = {
            f.name for f in session.exec(select(Feed).where(col(Feed.id).in_(claim.feed_ids)))
        }
    assert claimed == {f"due{n}" for n in range(10)}
    for name in claimed:
        assert after[name] == now + timedelta(seconds=settings.feed_lease_seconds)
    untouched = {name for name in before if name not in claimed}
    assert {name: after[name] for name in untouched} == {name: before[name] for name in untouched}
    assert _change_count() == changes
    # Claimed feeds are not due again within the lease: the next tick finds nothing.
    again = pipeline.claim_due_feeds(settings=settings, now=now)
    assert (again.feed_ids, again.claims) == ([], 1)


def test_a_tick_stops_at_its_claim_cap_and_the_next_tick_takes_the_rest(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 due feeds, batches of 3, at most 4 claims: 12 now, the oldest-due first; the
    other 8 stay due for the next tick."""
    settings = _settings(monkeypatch, batch=3, claims=4)
    now = _add_feeds(due=20)

    first = pipeline.claim_due_feeds(settings=settings, now=now)
    second = pipeline.claim_due_feeds(settings=settings, now=now)

    assert (first.claims, len(first.feed_ids)) == (4, 12)
    assert (second.claims, len(second.feed_ids)) == (3, 8)
    assert not set(first.feed_ids) & set(second.feed_ids)
    with session_scope() as session:
        oldest = session.exec(select(Feed.name).where(col(Feed.id).in_(first.feed_ids))).all()
    # due0 is due latest (60 s ago), due19 earliest: the first tick took the 12 oldest.
    assert set(oldest) == {f"due{n}" for n in range(8, 20)}


def test_concurrent_ticks_never_claim_a_feed_twice(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six ticks race over 300 due feeds until none is left: every feed is claimed
    exactly once (SKIP LOCKED on PostgreSQL, one UPDATE statement on SQLite)."""
    settings = _settings(monkeypatch, batch=7, claims=3)
    now = _add_feeds(due=300, later=5)
    start = threading.Barrier(6)
    claimed: list[list[int]] = [[] for _ in range(6)]
    errors: list[BaseException] = []

    def tick(n: int) -> None:
        try:
            start.wait()
            while True:
                claim = pipeline.claim_due_feeds(settings=settings, now=now)
                if not claim.feed_ids:
                    return
                claimed[n] += claim.feed_ids
        except BaseException as exc:  # reported below, with the thread's claims
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    every = [feed_id for ids in claimed for feed_id in ids]
    assert len(every) == len(set(every)) == 300
    assert sum(1 for ids in claimed if ids) > 1, "the ticks did not overlap at all"


def test_a_claim_reads_the_due_index_and_updates_by_primary_key(database_url: str) -> None:
    """With 10,000 feeds the claim walks ix_feeds_due and finds the rows it pushes by
    primary key: no scan of the whole table, so its cost does not grow with the feeds."""
    now = _add_feeds(due=1_000, later=9_000)
    with session_scope() as session:
        dialect = session.get_bind().dialect
        if dialect.name == "postgresql":
            session.execute(sa.text("ANALYZE feeds"))
        statement = store.due_claim_statement(dialect.name, now=now, limit=500, claim_seconds=300)
        sql = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN" if dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        plan = "\n".join(str(r[-1]) for r in session.execute(sa.text(f"{explain} {sql}")).all())
        session.rollback()
    assert "ix_feeds_due" in plan, plan
    if dialect.name == "postgresql":
        assert "Index Scan using feeds_pkey" in plan, plan
        assert "Seq Scan" not in plan, plan
    else:
        assert "USING INTEGER PRIMARY KEY" in plan, plan
        assert "SCAN feeds\n" not in plan + "\n", plan
