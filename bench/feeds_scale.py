"""Many feeds polled at realistic intervals: can beat and the workers keep up, at what cost?

    .venv/bin/python bench/feeds_scale.py                      # 10,000 feeds, PostgreSQL, 300 s
    .venv/bin/python bench/feeds_scale.py --db sqlite --seconds 180
    .venv/bin/python bench/feeds_scale.py --claims-per-tick 1  # one claim per tick (the old beat)

The real deployment on one host: redis-server, PostgreSQL (or SQLite), one ``ingest
worker`` and one ``ingest beat`` at their default intervals (beat every 60 s, 500 feeds a
claim). The feeds are served by the benchmark's news web (:mod:`bench.newsweb`) on
127.0.0.1; each answers a conditional GET with 304 unless it changed since the last
poll, which a poll finds with probability ``--change-fraction``: a new item is then
published at the top of the feed, which the worker fetches, extracts and stores.

Every feed has its own interval, drawn from ``--min-interval``..``--max-interval``
(5 to 30 minutes: ~12 feeds due a second at 10,000), and its first due time falls at
a random point of that interval, as in a deployment that has been running for a
while. So is the history the conditional-GET guard reads (one full fetch, then 0-9
304s), so one poll in ten double-checks its 304, as in steady state.

The run measures for ``--seconds``, then waits one more beat interval (the drain) so
a feed due near the end has its tick. It reports polls/s against due/s, feeds not
polled at all (missed) or more than two beat intervals late, the lag from due time to
poll, the share of polls answered 304, beat's tick (``due_feeds_enqueued``: claims,
``claim_ms``, ``send_ms``, ``tick_ms``), CPU per poll of each process, Redis commands
per poll (``INFO commandstats``) and PostgreSQL commits and rows per poll
(``pg_stat_database``), and the rows ``change_log`` and ``feed_polls`` gain per poll.
Costs are over the whole measured time (drain included) per poll started in it; they
include beat's other ticks (change log every 10 s, webhooks every 1 s) and the new
articles of changed feeds, as a deployment pays them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.newsweb import NewsWeb, Page, load_pages, utc_now  # noqa: E402
from bench.run import (  # noqa: E402
    _deployment_cpu_s,
    _host_ticks,
    _host_usage,
    _pct,
    _postmaster_pid,
    _wait,
)

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ITEMS_PER_FEED = 10
PG_COUNTERS = (
    "xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
    "tup_updated", "tup_deleted", "blks_read", "blks_hit",
)  # fmt: skip


class ChangingNewsWeb(NewsWeb):
    """The news web whose feeds change between polls with a given probability.

    Deciding at request time (rather than on a clock) makes the share of polls that
    find a change exactly ``change_fraction``, whatever each feed's interval.
    """

    def __init__(self, pages: list[Page], *, change_fraction: float, seed: int) -> None:
        super().__init__(pages)
        self.change_fraction = change_fraction
        self._rng = random.Random(seed)
        self._items: dict[str, list[int]] = {}
        self._next_article = 0

    def publish_feed(self, name: str, *, now: datetime) -> tuple[str, bytes, str]:
        """Serve feed ``name`` with its current items; returns (URL, body, ETag)."""
        url = self.publish(name, self._items.setdefault(name, []), now=now)
        body, etag = self.feeds[url.removeprefix(self.base_url)]
        return url, body, etag

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if (
            path in self.feeds
            and handler.headers.get("If-None-Match")
            and self._rng.random() < self.change_fraction
        ):
            name = path.removeprefix("/feed/").removesuffix(".xml")
            with self._lock:
                article = self._next_article
                self._next_article += 1
                items = self._items[name] = [article, *self._items[name]][:ITEMS_PER_FEED]
            self.count("feed_changed")
            self.publish(name, items, now=utc_now())
        super()._handle(handler)


def _seed_feeds(
    web: ChangingNewsWeb, *, feeds: int, intervals: list[int], rng: random.Random
) -> list[int]:
    """The feeds, as after a while of polling: validators and body hash stored, one full
    fetch and 0-9 304s in ``feed_polls``; none due until :func:`_make_due`."""
    import sqlalchemy as sa

    from worker.db import session_scope
    from worker.feeds import body_hash
    from worker.models import Feed, FeedPoll, utcnow

    now = utcnow()
    far = now + timedelta(days=365)
    rows: list[dict[str, Any]] = []
    for n in range(feeds):
        name = f"feed{n}"
        url, body, etag = web.publish_feed(name, now=now)
        rows.append({
            "name": name, "url": url, "tags": [], "enabled": True, "state": "healthy",
            "conditional_get": True, "error_count": 0, "etag": etag,
            "last_body_hash": body_hash(body), "poll_interval_seconds": intervals[n],
            "last_polled_at": now, "last_success_at": now, "last_http_status": 304,
            "next_poll_at": far, "created_at": now, "updated_at": now,
        })  # fmt: skip
    with session_scope() as session:
        for start in range(0, len(rows), 2000):
            session.execute(sa.insert(Feed), rows[start : start + 2000])
        ids = [int(i) for i in session.execute(sa.select(Feed.id).order_by(Feed.id)).scalars()]
    history: list[dict[str, Any]] = []
    for feed_id, interval in zip(ids, intervals, strict=True):
        not_modified = rng.randrange(10)
        for k in range(not_modified + 1):
            at = now - timedelta(seconds=interval * (not_modified + 1 - k))
            history.append({
                "feed_id": feed_id, "started_at": at, "finished_at": at, "duration_ms": 5,
                "status": "ok" if k == 0 else "not_modified", "http_status": 200 if k == 0 else 304,
                "entries_seen": 0, "entries_new": 0, "bozo": False,
            })  # fmt: skip
    with session_scope() as session:
        for start in range(0, len(history), 5000):
            session.execute(sa.insert(FeedPoll), history[start : start + 5000])
    return ids


def _settle(*, postgres: bool) -> None:
    """Leave the seeded database as a running one would be: the seeded feeds' change-log
    rows numbered (else beat numbers 10,000 of them during the run, and they count as
    the polls' cost) and, on PostgreSQL, table statistics that know the seeded rows."""
    import sqlalchemy as sa

    from worker import changefeed
    from worker.db import get_engine

    changefeed.sequence_pending()
    if postgres:
        with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))


def _make_due(due: dict[int, datetime]) -> None:
    """Set each feed's next poll time (only ``next_poll_at``: not a change-feed row)."""
    import sqlalchemy as sa

    from worker.db import session_scope
    from worker.models import Feed

    with session_scope() as session:
        session.execute(
            sa.update(Feed), [{"id": fid, "next_poll_at": at} for fid, at in due.items()]
        )


def _polls_since(since: datetime) -> list[tuple[int, datetime, str, int | None]]:
    import sqlalchemy as sa

    from worker.db import session_scope
    from worker.models import FeedPoll
    from worker.store.sql import as_utc

    with session_scope() as session:
        rows = session.execute(
            sa.select(FeedPoll.feed_id, FeedPoll.started_at, FeedPoll.status, FeedPoll.http_status)
            .where(FeedPoll.started_at >= since)
            .order_by(FeedPoll.started_at)
        ).all()
    return [(int(r[0]), as_utc(r[1]), str(r[2]), r[3]) for r in rows]


def _table_rows(names: tuple[str, ...]) -> dict[str, int]:
    import sqlalchemy as sa

    from worker.db import session_scope

    with session_scope() as session:
        return {
            name: int(session.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in names
        }


def _pg_sizes() -> dict[str, float]:
    """Bytes per row of the two tables every poll grows (heap, indexes and TOAST)."""
    import sqlalchemy as sa

    from worker.db import session_scope

    sizes: dict[str, float] = {}
    with session_scope() as session:
        for name in ("feed_polls", "change_log"):
            size, rows = session.execute(
                sa.text(f"SELECT pg_total_relation_size('{name}'), count(*) FROM {name}")
            ).one()
            sizes[name] = round(int(size) / max(int(rows), 1), 1)
    return sizes


def _redis_calls(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_ins",
                  "n_tup_upd", "n_tup_hot_upd")  # fmt: skip


def _pg_counters(dsn: str, database: str) -> dict[str, int]:
    """``pg_stat_database`` of the run's database and ``pg_stat_user_tables`` of each of
    its tables (``<table>.<counter>``), after the server flushed its stats."""
    import psycopg

    with psycopg.connect(f"{dsn} dbname={database}", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
        assert row is not None
        counters = dict(zip(PG_COUNTERS, (int(v) for v in row), strict=True))
        for table, *values in conn.execute(
            f"SELECT relname, {', '.join(f'coalesce({c}, 0)' for c in TABLE_COUNTERS)} "
            "FROM pg_stat_user_tables"
        ).fetchall():
            for name, value in zip(TABLE_COUNTERS, values, strict=True):
                counters[f"{table}.{name}"] = int(value)
    return counters


def _ticks(log: str, since: datetime) -> list[dict[str, Any]]:
    """Beat's ``due_feeds_enqueued`` lines (the worker logs them) from ``since`` on."""
    ticks = []
    for line in log.splitlines():
        if '"due_feeds_enqueued"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")) >= since:
            ticks.append(event)
    return ticks


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Seed, start the deployment, measure ``--seconds`` plus the drain, and stop it."""
    from tests.support import services
    from worker import migrate
    from worker.db import dispose_engines
    from worker.models import utcnow
    from worker.settings import reset_settings

    rng = random.Random(args.seed)
    redis = services.start_redis()
    pg: services.PostgresServer | None = None
    try:
        if args.db == "postgres":
            pg = services.start_postgres()
            db_url = pg.create_database("feeds")
        else:
            db_url = f"sqlite:///{workdir / 'feeds.db'}"
        env = {
            "INGEST_DATABASE_URL": db_url,
            "INGEST_BROKER_URL": redis.url,
            "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            "INGEST_BEAT_INTERVAL_SECONDS": str(args.beat_interval),
            "INGEST_DUE_BATCH_SIZE": str(args.batch_size),
            "INGEST_DUE_CLAIMS_PER_TICK": str(args.claims_per_tick),
            # Every feed is on 127.0.0.1: the per-host politeness limit (1/s) would
            # measure itself. Real feeds are spread over many hosts.
            "INGEST_PER_HOST_RATE": "100000",
            "INGEST_PER_HOST_BURST": "100000",
            "INGEST_LOG_LEVEL": "INFO",
        }
        os.environ.update(env)
        reset_settings()
        dispose_engines()
        migrate.upgrade(db_url)

        pages = load_pages(SHARED_DATA)
        web = ChangingNewsWeb(pages, change_fraction=args.change_fraction, seed=args.seed)
        web.start()
        try:
            intervals = [
                rng.randint(args.min_interval, args.max_interval) for _ in range(args.feeds)
            ]
            ids = _seed_feeds(web, feeds=args.feeds, intervals=intervals, rng=rng)
            _settle(postgres=pg is not None)
            rows0 = _table_rows(("feed_polls", "change_log", "entries", "articles"))
            worker = services.start_celery(
                "worker", env, workdir=workdir, concurrency=args.concurrency
            )
            beat: services.CeleryProcess | None = None
            try:
                beat = services.start_celery("beat", env, workdir=workdir)
                _wait(lambda: "ready" in worker.log(), timeout=90, what="worker ready")
                _wait(lambda: "Starting" in beat.log(), timeout=60, what="beat started")
                time.sleep(1)
                pids = (
                    worker.process.pid,
                    beat.process.pid,
                    redis.process.pid,
                    _postmaster_pid(pg) if pg is not None else None,
                )
                pg_dsn = f"host=127.0.0.1 port={pg.port} user=postgres" if pg else ""
                start = utcnow()
                due = {
                    fid: start + timedelta(seconds=rng.uniform(0, interval))
                    for fid, interval in zip(ids, intervals, strict=True)
                }
                _make_due(due)
                # After the bench's own update of every feed, so it is not counted.
                redis0 = _redis_calls(redis.url)
                pg0 = _pg_counters(pg_dsn, "feeds") if pg else None
                cpu0 = _deployment_cpu_s(*pids)
                host0 = _host_ticks()
                end = start + timedelta(seconds=args.seconds)
                drain = args.drain if args.drain is not None else args.beat_interval + 15
                stop = end + timedelta(seconds=drain)
                while (left := (stop - utcnow()).total_seconds()) > 0:
                    time.sleep(min(left, 30.0))
                    if not args.json:
                        polled = len(_polls_since(start))
                        print(f"  {(utcnow() - start).total_seconds():.0f} s: {polled} polls",
                              flush=True)  # fmt: skip
                seconds_total = (utcnow() - start).total_seconds()
                cpu1 = _deployment_cpu_s(*pids)
                host = _host_usage(host0, _host_ticks())
                redis1 = _redis_calls(redis.url)
                if pg is not None:
                    time.sleep(1.5)  # PostgreSQL flushes a backend's stats at most every second
                pg1 = _pg_counters(pg_dsn, "feeds") if pg else None
            finally:
                try:
                    if beat is not None:
                        beat.stop()
                finally:
                    worker.stop()
            log = worker.log()
        finally:
            web.stop()
        polls = _polls_since(start)
        rows1 = _table_rows(("feed_polls", "change_log", "entries", "articles"))
        sizes = _pg_sizes() if pg is not None else None
        return _report(
            args,
            start=start,
            end=end,
            seconds_total=seconds_total,
            due=due,
            polls=polls,
            ticks=_ticks(log, start),
            web_counts=dict(web.counts),
            cpu={k: cpu1[k] - cpu0[k] for k in cpu1},
            host=host,
            redis_calls={k: v - redis0.get(k, 0) for k, v in redis1.items()},
            pg_delta={k: pg1[k] - pg0[k] for k in pg1} if pg0 and pg1 else None,
            rows={k: rows1[k] - rows0[k] for k in rows1},
            sizes=sizes,
            worker_errors=log.count('"level": "error"'),
        )
    finally:
        dispose_engines()
        if pg is not None:
            pg.stop()
        redis.stop()


def _report(
    args: argparse.Namespace,
    *,
    start: datetime,
    end: datetime,
    seconds_total: float,
    due: dict[int, datetime],
    polls: list[tuple[int, datetime, str, int | None]],
    ticks: list[dict[str, Any]],
    web_counts: dict[str, int],
    cpu: dict[str, float],
    host: dict[str, float],
    redis_calls: dict[str, int],
    pg_delta: dict[str, int] | None,
    rows: dict[str, int],
    sizes: dict[str, float] | None,
    worker_errors: int,
) -> dict[str, Any]:
    """The figures of one run (see the module docstring for what each one means)."""
    seconds = (end - start).total_seconds()
    first_poll: dict[int, datetime] = {}
    for feed_id, started_at, _status, _http in polls:
        first_poll.setdefault(feed_id, started_at)
    due_in_window = {fid: at for fid, at in due.items() if at <= end}
    lags = [
        (first_poll[fid] - at).total_seconds() for fid, at in due_in_window.items()
        if fid in first_poll
    ]  # fmt: skip
    late_after = 2 * args.beat_interval
    n = max(len(polls), 1)
    statuses: dict[str, int] = {}
    for _fid, _at, status, _http in polls:
        statuses[status] = statuses.get(status, 0) + 1
    redis_total = sum(v for k, v in redis_calls.items() if k != "info")
    deployment = sum(cpu.values())
    return {
        "database": args.db,
        "feeds": args.feeds,
        "settings": {
            "seconds": args.seconds,
            "beat_interval_s": args.beat_interval,
            "batch_size": args.batch_size,
            "claims_per_tick": args.claims_per_tick,
            "claim_cap_polls_per_s": round(
                args.batch_size * args.claims_per_tick / args.beat_interval, 2
            ),
            "intervals_s": [args.min_interval, args.max_interval],
            "change_fraction": args.change_fraction,
            "concurrency": args.concurrency,
        },
        "due_per_s": round(len(due_in_window) / seconds, 2),
        # Polls that started within the measured time, per second of it: what the
        # deployment achieved. Beat ticks at a random phase to the window, so a run of
        # k beat intervals holds k ticks, give or take one.
        "polls_per_s": round(sum(1 for _f, at, _s, _h in polls if at <= end) / seconds, 2),
        "polls_started_per_s_whole_run": round(len(polls) / seconds_total, 2),
        "due": len(due_in_window),
        # Due within the measured time but not polled when it ended (the backlog)...
        "behind_at_end": sum(
            1 for fid in due_in_window if fid not in first_poll or first_poll[fid] > end
        ),
        # ... and still not polled after the drain.
        "missed": sum(1 for fid in due_in_window if fid not in first_poll),
        "late": sum(1 for lag in lags if lag > late_after),
        "late_after_s": late_after,
        "lag_s": {"p50": _pct(lags, 50), "p95": _pct(lags, 95), "max": _pct(lags, 100)},
        "polls": len(polls),
        "poll_statuses": statuses,
        # Of the conditional GETs, the share answered 304 (the rest found a change);
        # a poll that double-checks its 304 with a full GET still counts as a 304 here.
        "share_304": round(
            web_counts.get("feed_304", 0)
            / max(web_counts.get("feed_304", 0) + web_counts.get("feed_changed", 0), 1),
            3,
        ),
        "share_polls_not_modified": round(statuses.get("not_modified", 0) / n, 3),
        "web_requests": web_counts,
        "ticks": {
            "count": len(ticks),
            "feeds": [int(t["feeds"]) for t in ticks],
            "claims": [int(t.get("claims", 1)) for t in ticks],
            **{
                f"{key}_p50_p95": [_pct([float(t[key]) for t in ticks], q) for q in (50, 95)]
                for key in ("claim_ms", "send_ms", "tick_ms")
                if ticks and key in ticks[0]
            },
        },
        "cpu_ms_per_poll": round(deployment / n * 1000, 1),
        "cpu_ms_per_poll_by_process": {k: round(v / n * 1000, 1) for k, v in cpu.items()},
        "host": host,
        "redis_commands_per_poll": round(redis_total / n, 1),
        "redis_top_commands_per_poll": {
            k: round(v / n, 2)
            for k, v in sorted(redis_calls.items(), key=lambda kv: -kv[1])[:8]
            if k != "info"
        },
        "postgres_per_poll": (
            {k: round(v / n, 1) for k, v in pg_delta.items() if "." not in k}
            if pg_delta is not None
            else None
        ),
        # Where PostgreSQL's reads and writes went: each table's counters per poll,
        # only those at 0.05 or more.
        "postgres_tables_per_poll": (
            {k: round(v / n, 2) for k, v in sorted(pg_delta.items()) if "." in k and v / n >= 0.05}
            if pg_delta is not None
            else None
        ),
        "rows_per_poll": {k: round(v / n, 3) for k, v in rows.items()},
        "bytes_per_row": sizes,
        "worker_error_log_lines": worker_errors,
    }


def print_table(result: dict[str, Any]) -> None:
    s = result["settings"]
    ticks = result["ticks"]
    print(f"\n{result['feeds']} feeds on {result['database']}, {s['seconds']} s, beat every "
          f"{s['beat_interval_s']} s, {s['claims_per_tick']} x {s['batch_size']} feeds a tick "
          f"(cap {s['claim_cap_polls_per_s']}/s)")  # fmt: skip
    rows = [
        ("due / polled per s", f"{result['due_per_s']} / {result['polls_per_s']}"),
        ("behind at end, missed, late", f"{result['behind_at_end']}, {result['missed']}, "
                                        f"{result['late']} (> {result['late_after_s']} s)"),
        ("lag p50 / p95 / max", " / ".join(f"{v} s" for v in result["lag_s"].values())),
        ("answered 304", f"{100 * result['share_304']:.1f} % of {result['polls']} polls "
                         f"({100 * result['share_polls_not_modified']:.1f} % not double-checked)"),
        ("ticks (feeds)", str(ticks["feeds"])),
        ("claim / send / tick ms p50,p95", " / ".join(
            str(ticks.get(f"{k}_p50_p95")) for k in ("claim_ms", "send_ms", "tick_ms"))),
        ("CPU ms per poll", f"{result['cpu_ms_per_poll']} {result['cpu_ms_per_poll_by_process']}"),
        ("Redis commands per poll", str(result["redis_commands_per_poll"])),
        ("PostgreSQL per poll", str(result["postgres_per_poll"])),
        ("PostgreSQL tables per poll", str(result["postgres_tables_per_poll"])),
        ("rows per poll", str(result["rows_per_poll"])),
        ("bytes per row", str(result["bytes_per_row"])),
        ("worker error lines", str(result["worker_error_log_lines"])),
    ]  # fmt: skip
    for name, value in rows:
        print(f"  {name:<32} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=300.0, help="measured time")
    parser.add_argument(
        "--drain",
        type=float,
        default=None,
        help="extra seconds after --seconds (default: beat interval + 15)",
    )
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--beat-interval", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--claims-per-tick", type=int, default=4)
    parser.add_argument("--min-interval", type=int, default=300)
    parser.add_argument("--max-interval", type=int, default=1800)
    parser.add_argument("--change-fraction", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="feeds-scale-") as tmp:
        result = run(args, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
