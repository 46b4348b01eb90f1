"""The retention of ``feed_polls`` at scale: how long the prune takes on PostgreSQL
(or SQLite, ``--db sqlite``).

Why: without retention ``feed_polls`` gains about 1M rows a day at 10,000 feeds; the
hourly ``prune_feed_polls`` (``worker.pipeline.retention``) keeps it to
``INGEST_FEED_POLLS_RETENTION_DAYS`` of polls. This bench loads N feeds' poll history
into a throwaway PostgreSQL cluster (``COPY``; a live deployment writes the same rows one
poll at a time) and times the same function the task runs, in three situations:

1. **first prune**: a deployment that ran ``--days`` days before it had retention;
   the prune deletes everything past ``--retention-days`` in one run (the task would
   split it into runs of half its time limit);
2. **steady hourly prune**: an hour of new polls later (``VACUUM`` first, as autovacuum
   would have in that hour), the cut-off moves by an hour: the run the deployment
   does every hour, ``--hours`` times;
3. **nothing to do**: the same cut-off again: what a run costs when there is nothing to
   delete (its probes of every feed).

The history: each feed is polled every ``--interval-minutes`` from a random phase.
96 % are healthy: every 10th poll is a full GET (``ok``, as ``INGEST_REVALIDATE_EVERY_POLLS``
makes it), 5 % of the others find new items (``ok``), 1 % fail, the rest are 304s. 3 %
have been failing since 0.7 to 1.8 retentions ago (10 to 25 days at 14; errors with the
backoff doubling to 24 h, disabled after 7 days), so many of them keep a last ``ok`` poll
older than the cut-off and the failures after it. 1 % never had an ``ok`` poll (added at
a random time, failing, disabled after 7 days). After every phase the rows left are checked
against the rule, computed independently while generating: per feed, how many polls and
the oldest one. The table is filled hour by hour, in time order, as a live one is.

    nice -n 5 python -m bench.polls_retention --feeds 10000 --json /tmp/pr10k.json
    nice -n 5 python -m bench.polls_retention --feeds 10000 --db sqlite --json /tmp/pr10ks.json

Prints JSON (``--json PATH`` also writes it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
BACKOFF_CAP = timedelta(hours=24)
DISABLED_AFTER = timedelta(days=7)
COPY_ROWS = 200_000
"""Rows per COPY transaction."""


@dataclass
class Expected:
    """What the rule keeps of one feed's polls at one cut-off."""

    count: int = 0
    oldest: datetime | None = None


def _backoff_errors(
    start: datetime, until: datetime, interval: timedelta
) -> Iterator[tuple[datetime, str]]:
    """A failing feed's polls: the wait doubles from the interval up to a day, and the
    feed is disabled (no more polls) after 7 days of failing."""
    at, wait = start, interval
    while at < until and at < start + DISABLED_AFTER:
        yield at, "error"
        at += wait
        wait = min(wait * 2, BACKOFF_CAP)


def _polls(
    rng: random.Random, kind: str, start: datetime, end: datetime, t0: datetime,
    days: float, interval: timedelta, retention: timedelta,
) -> Iterator[tuple[datetime, str]]:  # fmt: skip
    """One feed's polls (started_at, status), oldest first. A failing feed started failing
    0.7 to 1.8 retentions before ``t0`` (10 to 25 days at 14), so some still have their
    last ok poll inside the retention and the others keep it past the cut-off."""
    if kind == "never_ok":
        yield from _backoff_errors(start + rng.uniform(0, days) * DAY, end, interval)
        return
    fails_at = t0 - rng.uniform(0.7, 1.8) * retention if kind == "failing" else end
    at, k = start + rng.uniform(0, 1) * interval, 0
    while at < min(end, fails_at):
        if k % 10 == 0 or rng.random() < 0.05:
            yield at, "ok"
        else:
            yield at, "error" if rng.random() < 0.01 else "not_modified"
        at += interval
        k += 1
    if kind == "failing":
        yield from _backoff_errors(at, end, interval)


class FeedStream:
    """Feed ``feed_id``'s polls from ``days`` before ``t0`` to ``hours`` after it (a pure
    function of (seed, feed_id)), handed out in time order, and what the rule keeps of
    those handed out so far at each of ``cutoffs``, tallied as they go (the whole history
    of 100,000 feeds would not fit in memory)."""

    def __init__(
        self, feed_id: int, *, seed: int, t0: datetime, days: float, hours: int,
        interval: timedelta, retention: timedelta, cutoffs: list[datetime],
    ) -> None:  # fmt: skip
        rng = random.Random(seed * 1_000_003 + feed_id)
        draw = rng.random()
        self.feed_id = feed_id
        self.kind = "never_ok" if draw < 0.01 else "failing" if draw < 0.04 else "healthy"
        self.url = f"https://feed{feed_id}.example/rss"
        self._it = _polls(rng, self.kind, t0 - days * DAY, t0 + hours * HOUR, t0, days, interval,
                          retention)  # fmt: skip
        self._next = next(self._it, None)
        self.cutoffs = cutoffs
        self.last_ok: datetime | None = None
        self.since_ok = 0  # polls from the newest ok one on
        self.count_from = [0] * len(cutoffs)  # polls at or after each cut-off
        self.first_from: list[datetime | None] = [None] * len(cutoffs)

    def take_until(self, end: datetime) -> list[tuple[datetime, str]]:
        """The polls that started before ``end`` and were not handed out yet."""
        taken = []
        while self._next is not None and self._next[0] < end:
            at, status = self._next
            if status == "ok":
                self.last_ok, self.since_ok = at, 1
            elif self.last_ok is not None:
                self.since_ok += 1
            for i, cut in enumerate(self.cutoffs):
                if at >= cut:
                    self.count_from[i] += 1
                    if self.first_from[i] is None:
                        self.first_from[i] = at
            taken.append(self._next)
            self._next = next(self._it, None)
        return taken

    def kept(self, i: int) -> Expected:
        """The rule at ``cutoffs[i]``, over the polls handed out: those not older than the
        cut-off, or not older than the newest ok poll; computed here without SQL."""
        if self.last_ok is not None and self.last_ok < self.cutoffs[i]:
            return Expected(self.since_ok, self.last_ok)
        return Expected(self.count_from[i], self.first_from[i])


def _row(poll_id: int, feed: FeedStream, at: datetime, status: str) -> tuple[Any, ...]:
    """A row shaped like the poller's (``worker.pipeline.polling``), for realistic bytes."""
    http = {"ok": 200, "not_modified": 304, "error": None}[status]
    error = "timed out reading https://feed.example/rss" if status == "error" else None
    return (
        poll_id, feed.feed_id, at, at + timedelta(milliseconds=180), 180, status, http,
        25 if status == "ok" else 0, 1 if status == "ok" else 0, False,
        error, "timeout" if error else None, None if error else feed.url,
    )  # fmt: skip


_COLUMNS = (
    "id", "feed_id", "started_at", "finished_at", "duration_ms", "status", "http_status",
    "entries_seen", "entries_new", "bozo", "error", "error_class", "final_url",
)  # fmt: skip


def _sqlite_time(value: Any) -> Any:
    """A datetime as SQLite rows hold it (``worker.models.UTCDateTime``): naive UTC text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _copy(url: str, rows: list[tuple[Any, ...]]) -> None:
    """Append rows: ``COPY`` on PostgreSQL, one ``executemany`` on SQLite."""
    from worker.db import get_engine

    if not rows:
        return
    with get_engine(url).begin() as conn:
        if url.startswith("sqlite"):
            marks = ", ".join("?" for _ in _COLUMNS)
            conn.exec_driver_sql(
                f"INSERT INTO feed_polls ({', '.join(_COLUMNS)}) VALUES ({marks})",
                [tuple(_sqlite_time(v) for v in row) for row in rows],
            )
            return
        raw = conn.connection.driver_connection
        assert raw is not None
        names = ", ".join(_COLUMNS)
        with raw.cursor() as cursor, cursor.copy(f"COPY feed_polls ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    from worker.db import get_engine

    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        result = conn.execute(sa.text(statement))
        return [tuple(r) for r in result] if result.returns_rows else []


def _table_bytes(url: str) -> int:
    """``feed_polls`` with its indexes on PostgreSQL; the pages in use of the whole file on
    SQLite (every other table is small here)."""
    if url.startswith("sqlite"):
        pages = _sql(url, "PRAGMA page_count")[0][0] - _sql(url, "PRAGMA freelist_count")[0][0]
        return int(pages * _sql(url, "PRAGMA page_size")[0][0])
    return int(_sql(url, "SELECT pg_total_relation_size('feed_polls')")[0][0])


def _maintain(url: str, *tables: str) -> None:
    """What the database's own upkeep would have done by the next hourly run: autovacuum
    on PostgreSQL. Nothing on SQLite, which reuses free pages by itself and whose
    deployments run no ANALYZE."""
    if not url.startswith("sqlite"):
        for table in tables:
            _sql(url, f"VACUUM ANALYZE {table}")


def _rows(url: str) -> int:
    return int(_sql(url, "SELECT count(*) FROM feed_polls")[0][0])


def _parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _check(url: str, expected: dict[int, Expected]) -> dict[str, Any]:
    """Compare every feed's rows left with the rule: count and oldest poll."""
    from worker.store import as_utc

    found = {
        int(f): (int(n), as_utc(_parse_time(oldest)))
        for f, n, oldest in _sql(
            url, "SELECT feed_id, count(*), min(started_at) FROM feed_polls GROUP BY feed_id"
        )
    }
    wrong = [
        feed_id
        for feed_id, want in expected.items()
        if found.get(feed_id, (0, None)) != (want.count, want.oldest)
    ]
    return {
        "rows_left": sum(n for n, _ in found.values()),
        "rows_expected": sum(e.count for e in expected.values()),
        "feeds_wrong": len(wrong),
        "feeds_wrong_sample": wrong[:5],
    }


def _prune(url: str, *, now: datetime, retention_days: int, batch: int) -> dict[str, Any]:
    """One run of the function the task runs (``pipeline.prune_feed_polls``), timed."""
    from worker import pipeline
    from worker.settings import Settings

    settings = Settings(database_url=url, feed_polls_retention_days=retention_days)
    cpu = time.process_time()
    result = pipeline.prune_feed_polls(settings=settings, now=now, batch_size=batch)
    assert result.finished
    return {
        "deleted": result.deleted,
        "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.deleted / result.seconds) if result.seconds else None,
        "bench_process_cpu_seconds": round(time.process_time() - cpu, 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import services
    from worker import migrate
    from worker.db import dispose_engines, get_engine
    from worker.models import Feed, utcnow
    from worker.pipeline.retention import PRUNE_BATCH_ROWS
    from worker.settings import reset_settings

    interval = timedelta(minutes=args.interval_minutes)
    batch = args.batch or PRUNE_BATCH_ROWS
    t0 = utcnow().replace(microsecond=0)
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.polls_retention", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "feeds": args.feeds,
        "days": args.days,
        "retention_days": args.retention_days,
        "interval_minutes": args.interval_minutes,
        "batch_rows": batch,
        "database": args.db,
        "fsync": args.fsync_on,
    }
    saved_url = os.environ.get("INGEST_DATABASE_URL")
    scratch = Path(tempfile.mkdtemp(prefix="polls-retention-"))
    pg = services.start_postgres(fsync=args.fsync_on) if args.db == "postgres" else None
    try:
        url = (
            pg.create_database("polls_retention")
            if pg is not None
            else f"sqlite:///{scratch / 'polls.db'}"
        )
        os.environ["INGEST_DATABASE_URL"] = url
        reset_settings()
        dispose_engines()
        migrate.upgrade(url)
        engine = get_engine(url)

        # The feeds, then their polls up to t0 (the hours after t0 wait in memory).
        started = time.monotonic()
        with engine.begin() as conn:
            for first in range(0, args.feeds, 5_000):
                conn.execute(sa.insert(Feed), [
                    {"id": n, "name": f"feed{n}", "url": f"https://feed{n}.example/rss",
                     "tags": [], "enabled": True, "state": "healthy", "conditional_get": True,
                     "error_count": 0, "poll_interval_seconds": int(interval.total_seconds()),
                     "created_at": t0 - args.days * DAY, "updated_at": t0}
                    for n in range(first + 1, min(first + 5_000, args.feeds) + 1)
                ])  # fmt: skip
        first_cut = t0 - args.retention_days * DAY
        hour_cuts = [first_cut + h * HOUR for h in range(1, args.hours + 1)]
        streams = [
            FeedStream(feed_id, seed=args.seed, t0=t0, days=args.days, hours=args.hours,
                       interval=interval, retention=args.retention_days * DAY,
                       cutoffs=[first_cut, *hour_cuts])
            for feed_id in range(1, args.feeds + 1)
        ]  # fmt: skip
        kinds: dict[str, int] = {}
        for stream in streams:
            kinds[stream.kind] = kinds.get(stream.kind, 0) + 1
        # Hour by hour, every feed's polls of that hour: the table fills in time order, as a
        # live one does, so a prune finds the oldest polls together at the table's start.
        ids = iter(range(1, 1 << 62))
        rows: list[tuple[Any, ...]] = []

        def polls_until(end: datetime) -> list[tuple[Any, ...]]:
            return [
                _row(next(ids), stream, at, status)
                for stream in streams
                for at, status in stream.take_until(end)
            ]

        hour_end = t0 - args.days * DAY + HOUR
        while hour_end < t0 + HOUR:
            rows += polls_until(min(hour_end, t0 + timedelta(microseconds=1)))
            if len(rows) >= COPY_ROWS:
                _copy(url, rows)
                rows = []
            hour_end += HOUR
        _copy(url, rows)
        expect_first = {stream.feed_id: stream.kept(0) for stream in streams}
        if pg is not None:
            _sql(url, "SELECT setval(pg_get_serial_sequence('feed_polls', 'id'),"
                      " (SELECT max(id) FROM feed_polls))")  # fmt: skip
        _maintain(url, "feeds", "feed_polls")
        loaded = _rows(url)
        size = _table_bytes(url)
        out["kinds"] = kinds
        out["load"] = {
            "rows": loaded,
            "seconds": round(time.monotonic() - started, 1),
            "table_bytes": size,
            "bytes_per_row": round(size / loaded, 1) if loaded else None,
            "rows_per_feed_day": round(loaded / args.feeds / args.days, 1),
        }

        # 1. The first prune of the whole backlog.
        first = _prune(url, now=t0, retention_days=args.retention_days, batch=batch)
        first["check"] = _check(url, expect_first)
        first["rows_before"] = loaded
        out["first_prune"] = first
        # What autovacuum does before the next hourly run.
        _maintain(url, "feed_polls")
        out["after_first_prune"] = {"rows": _rows(url), "table_bytes": _table_bytes(url)}

        # 2. Hourly: an hour of new polls, then the prune with the cut-off an hour on;
        # 3. the same cut-off again, with nothing left to delete.
        out["hourly"], out["nothing_to_do"] = [], []
        for h, cut in enumerate(hour_cuts):
            hour = polls_until(t0 + (h + 1) * HOUR + timedelta(microseconds=1))
            expected = {stream.feed_id: stream.kept(h + 1) for stream in streams}
            _copy(url, hour)
            _maintain(url, "feed_polls")
            now = cut + args.retention_days * DAY
            step = _prune(url, now=now, retention_days=args.retention_days, batch=batch)
            step["inserted_before"] = len(hour)
            step["check"] = _check(url, expected)
            out["hourly"].append(step)
            idle = _prune(url, now=now, retention_days=args.retention_days, batch=batch)
            idle["check"] = _check(url, expected)
            out["nothing_to_do"].append(idle)
        out["held"] = {"rows": _rows(url), "table_bytes": _table_bytes(url)}
        checks = [p["check"] for p in [out["first_prune"], *out["hourly"], *out["nothing_to_do"]]]
        out["ok"] = all(
            c["feeds_wrong"] == 0 and c["rows_left"] == c["rows_expected"] for c in checks
        ) and all(p["deleted"] == 0 for p in out["nothing_to_do"])
    finally:
        dispose_engines()
        if pg is not None:
            pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if saved_url is None:
            os.environ.pop("INGEST_DATABASE_URL", None)
        else:
            os.environ["INGEST_DATABASE_URL"] = saved_url
        reset_settings()
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=21.0, help="history before the first prune")
    parser.add_argument("--retention-days", type=int, default=14)
    parser.add_argument("--interval-minutes", type=float, default=15.0)
    parser.add_argument("--hours", type=int, default=3, help="hourly prunes after the first")
    parser.add_argument("--batch", type=int, default=0, help="rows per batch (0: the task's)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--fsync-on", action="store_true", help="fsync + synchronous_commit")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM (a background run ignores SIGINT): still stop the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
