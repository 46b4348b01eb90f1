"""Retention of ``feed_polls`` (``store.prune_polls``, the ``prune_feed_polls`` task) on
SQLite and PostgreSQL: old polls go, each feed's newest ``ok`` poll and everything after
it stay, however old, in batches, as often and as concurrently as it is run."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.helpers import running_celery, wait_until, worker_env
from tests.support.factories import add_feed
from worker import pipeline, store
from worker.db import session_scope
from worker.models import FeedPoll, utcnow
from worker.settings import get_settings
from worker.store import polls

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
Poll = tuple[int, int, datetime, str]  # (id, feed_id, started_at, status)


def add_polls(feed_id: int, now: datetime, *ages_and_statuses: tuple[timedelta, str]) -> None:
    """Polls of one feed that started ``age`` before ``now``."""
    with session_scope() as session:
        for age, status in ages_and_statuses:
            at = now - age
            store.add_poll(
                session, FeedPoll(feed_id=feed_id, started_at=at, finished_at=at, status=status)
            )


def all_polls() -> list[Poll]:
    with session_scope() as session:
        rows = session.execute(
            sa.select(FeedPoll.id, FeedPoll.feed_id, FeedPoll.started_at, FeedPoll.status)
        ).all()
    return sorted((int(i), int(f), store.as_utc(t), str(s)) for i, f, t, s in rows)


def kept_by_the_rule(rows: Iterable[Poll], cutoff: datetime) -> set[int]:
    """The rule, spelled out independently of the SQL: a poll stays if it is not older
    than the cut-off, or if it is not older than its feed's newest ``ok`` poll."""
    rows = list(rows)
    newest_ok: dict[int, datetime] = {}
    for _, feed_id, at, status in rows:
        if status == "ok" and at > newest_ok.get(feed_id, at - DAY):
            newest_ok[feed_id] = at
    return {
        poll_id
        for poll_id, feed_id, at, _ in rows
        if at >= cutoff or (feed_id in newest_ok and at >= newest_ok[feed_id])
    }


def prune(cutoff: datetime, *, batch_size: int = 1000) -> int:
    with session_scope() as session:
        return store.prune_polls(session, older_than=cutoff, batch_size=batch_size)


def test_old_polls_go_and_the_newest_ok_poll_stays_with_what_follows(database_url: str) -> None:
    """The four kinds of feed: healthy (an ok poll inside the window), failing since
    before the cut-off (its last ok poll and the failures after it stay), never ok (only
    the window stays) and one with no old polls at all."""
    now = utcnow()
    healthy = add_feed(name="healthy")
    add_polls(healthy, now, (20 * DAY, "ok"), (16 * DAY, "not_modified"),
              (15 * DAY, "error"), (3 * DAY, "ok"), (2 * DAY, "not_modified"),
              (timedelta(hours=1), "not_modified"))  # fmt: skip
    failing = add_feed(name="failing")
    add_polls(failing, now, (30 * DAY, "ok"), (20 * DAY, "ok"), (19 * DAY, "not_modified"),
              (18 * DAY, "error"), (10 * DAY, "error"), (DAY, "error"))  # fmt: skip
    never_ok = add_feed(name="never-ok")
    add_polls(never_ok, now, (20 * DAY, "error"), (15 * DAY, "not_modified"),
              (13 * DAY, "error"), (DAY, "error"))  # fmt: skip
    young = add_feed(name="young")
    add_polls(young, now, (DAY, "ok"), (timedelta(hours=2), "not_modified"))
    before = all_polls()
    cutoff = now - 14 * DAY

    deleted = prune(cutoff)

    left = all_polls()
    assert {p[0] for p in left} == kept_by_the_rule(before, cutoff)
    assert deleted == len(before) - len(left) == 3 + 1 + 2
    ages = {feed_id: sorted(round((now - at) / DAY) for _, f, at, _ in left if f == feed_id)
            for feed_id in (healthy, failing, never_ok, young)}  # fmt: skip
    assert ages[healthy] == [0, 2, 3]
    assert ages[failing] == [1, 10, 18, 19, 20]  # from its last ok poll, 20 days ago, on
    assert ages[never_ok] == [1, 13]
    assert ages[young] == [0, 1]


def test_a_poll_tied_with_the_newest_ok_poll_stays(database_url: str) -> None:
    """Polls are ordered by ``started_at`` (as the conditional-GET guard reads them), so
    one that started at the same instant as the newest ok poll is not older than it."""
    now = utcnow()
    feed = add_feed(name="tied")
    add_polls(feed, now, (21 * DAY, "error"), (20 * DAY, "ok"), (20 * DAY, "not_modified"))
    assert prune(now - 14 * DAY) == 1
    assert sorted(p[3] for p in all_polls()) == ["not_modified", "ok"]


def test_the_conditional_get_history_is_the_same_after_a_prune(database_url: str) -> None:
    """``fetch_history`` (last full fetch, 304s since) reads exactly what prune keeps."""
    now = utcnow()
    feed = add_feed(name="guarded")
    add_polls(feed, now, (30 * DAY, "ok"), (25 * DAY, "ok"),
              *[((24 - n) * DAY, "not_modified") for n in range(10)])  # fmt: skip
    with session_scope() as session:
        before = store.fetch_history(session, feed_id=feed)
    assert prune(now - 14 * DAY) == 1
    with session_scope() as session:
        assert store.fetch_history(session, feed_id=feed) == before
    assert before.not_modified_since == 10


def random_history(feeds: int, *, seed: int = 7) -> tuple[datetime, list[int]]:
    """``feeds`` feeds with 40 days of polls, a few a day, of random outcomes; some
    feeds never ok, some ok only long ago."""
    rng = random.Random(seed)
    now = utcnow()
    ids = [add_feed(name=f"f{n}") for n in range(feeds)]
    rows = []
    for n, feed_id in enumerate(ids):
        weights = [(1, 8, 1), (0, 5, 5), (1, 1, 8)][n % 3]
        last_ok_day = 40 if n % 5 == 0 else 0  # every fifth feed: no ok in 40 days
        for _ in range(rng.randrange(20, 60)):
            age = timedelta(days=rng.uniform(0, 40))
            status = rng.choices(["ok", "not_modified", "error"], weights=weights)[0]
            if status == "ok" and age < timedelta(days=last_ok_day):
                status = "error"
            at = now - age
            rows.append({"feed_id": feed_id, "started_at": at, "finished_at": at,
                         "status": status, "entries_seen": 0, "entries_new": 0,
                         "bozo": False})  # fmt: skip
    with session_scope() as session:
        session.execute(sa.insert(FeedPoll), rows)
    return now, ids


def test_small_batches_and_windows_give_the_same_result(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 7 rows and windows of 4 feeds: many transactions, same rows left."""
    monkeypatch.setattr(polls, "PRUNE_FEEDS_PER_STEP", 4)
    now, _ = random_history(30)
    before = all_polls()
    cutoff = now - 14 * DAY
    deleted = prune(cutoff, batch_size=7)
    left = all_polls()
    assert {p[0] for p in left} == kept_by_the_rule(before, cutoff)
    assert deleted == len(before) - len(left) > 100


def test_running_it_again_deletes_nothing_more(database_url: str) -> None:
    now, _ = random_history(12)
    cutoff = now - 14 * DAY
    assert prune(cutoff) > 0
    after_first = all_polls()
    assert prune(cutoff) == 0
    assert all_polls() == after_first


def test_two_prunes_at_once_delete_each_row_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs started together (beat's and a continuation, or two beats) end with the
    rule's rows, and their counts add up to what went."""
    monkeypatch.setattr(polls, "PRUNE_FEEDS_PER_STEP", 5)
    now, _ = random_history(40)
    before = all_polls()
    cutoff = now - 14 * DAY
    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            counts.append(prune(cutoff, batch_size=5))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    left = all_polls()
    assert {p[0] for p in left} == kept_by_the_rule(before, cutoff)
    assert sum(counts) == len(before) - len(left)


def test_the_prune_reads_the_poll_index_on_both_databases(database_url: str) -> None:
    """Both probes per feed (its newest ok poll, its old polls) are ranges of
    ix_feed_polls_feed_started, and feeds are walked by primary key: no table scan, so
    no new index is needed (docs/schema.md)."""
    now, _ = random_history(20)
    with session_scope() as session:
        dialect = session.get_bind().dialect
        if dialect.name == "postgresql":
            session.execute(sa.text("ANALYZE feeds"))
            session.execute(sa.text("ANALYZE feed_polls"))
        statement = polls.prune_statement(
            older_than=now - 14 * DAY, after_feed_id=0, up_to_feed_id=1000, limit=5000
        )
        sql = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        if dialect.name == "postgresql":
            # Few rows: make the planner show the plan it picks for a large table.
            session.execute(sa.text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN" if dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        plan = "\n".join(str(r[-1]) for r in session.execute(sa.text(f"{explain} {sql}")).all())
        session.rollback()
    if dialect.name == "postgresql":
        assert "Index Scan Backward using ix_feed_polls_feed_started" in plan, plan
        assert "Index Cond: ((feed_id = bounds.feed_id) AND (started_at <" in plan, plan
        assert "Seq Scan" not in plan, plan
    else:
        assert "SEARCH newest_ok USING INDEX ix_feed_polls_feed_started (feed_id=?)" in plan
        assert "ix_feed_polls_feed_started (feed_id=? AND started_at<?)" in plan, plan
        assert "SEARCH feeds USING INTEGER PRIMARY KEY" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


def test_the_pipeline_uses_the_retention_setting_and_stops_at_its_budget(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``INGEST_FEED_POLLS_RETENTION_DAYS`` sets the cut-off; with no time left the run
    stops after one batch and says it did not finish; the next run finishes."""
    monkeypatch.setenv("INGEST_FEED_POLLS_RETENTION_DAYS", "3")
    get_settings.cache_clear()
    now = utcnow()
    feed = add_feed(name="three-days")
    add_polls(feed, now, *[(n * DAY, "ok") for n in range(10)])
    first = pipeline.prune_feed_polls(settings=get_settings(), now=now, time_budget=0,
                                      batch_size=2)  # fmt: skip
    assert (first.deleted, first.finished) == (2, False)
    assert first.cutoff == now - 3 * DAY
    rest = pipeline.prune_feed_polls(settings=get_settings(), now=now, time_budget=60)
    assert (rest.deleted, rest.finished) == (4, True)
    assert sorted(round((now - p[2]) / DAY) for p in all_polls()) == [0, 1, 2, 3]


def test_a_real_worker_runs_the_task(
    broker_url: str, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``prune_feed_polls`` sent to a real Celery worker prunes with the worker's
    retention setting; sent twice, the second run finds nothing to do."""
    from worker import tasks

    now = utcnow()
    feed = add_feed(name="worked")
    add_polls(feed, now, (40 * DAY, "ok"), (30 * DAY, "ok"), (8 * DAY, "error"), (DAY, "ok"))
    env = worker_env(sqlite_url, broker_url, INGEST_FEED_POLLS_RETENTION_DAYS="7")
    with running_celery(env, tmp_path) as celery:
        with tasks.app.connection_for_write(url=broker_url) as connection:
            tasks.prune_feed_polls.apply_async(connection=connection)
        wait_until(lambda: len(all_polls()) == 1, timeout=60, what="the old polls pruned")
        with tasks.app.connection_for_write(url=broker_url) as connection:
            tasks.prune_feed_polls.apply_async(connection=connection)
        events = wait_until(
            lambda: celery.events().named("feed_polls_pruned")[1:] or None,
            timeout=60, what="the second run",
        )  # fmt: skip
    first = celery.events().named("feed_polls_pruned")[0]
    assert (first["rows"], first["finished"]) == (3, True)
    assert (events[0]["rows"], events[0]["finished"]) == (0, True)
    assert [p[3] for p in all_polls()] == ["ok"]
