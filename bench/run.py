"""End-to-end benchmark: the worker against a local news web, vs the bare work.

    .venv/bin/python bench/run.py            # 200 feeds, 5,000 article fetches (~13 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # 20 feeds, 300 fetches (< 2 min)
    .venv/bin/python bench/run.py --db postgres --workers 3 --pin --concurrency 1 --skip-baseline
                                             # 3 worker hosts, a core each (workers_curve.py)

One run measures, on the same pages:

1. baseline: decode + extraction + classification + dedup fingerprint in a
   multiprocessing pool as wide as the worker's concurrency (no HTTP, queue or DB),
   half of the pages before the end-to-end phase and half after, so drift in the
   host's speed during the run moves both sides of the ratio alike;
2. end-to-end: real redis-server, a real Celery worker (``ingest worker``) and
   beat, SQLite (or ``--db postgres``), feeds polled over HTTP from the local
   news web, every article fetched, extracted, classified, deduplicated and
   stored; articles/s, peak RSS of every pool process (sampled each second
   from /proc), and the time from an entry's first sighting to its storage;
3. steady state: feeds that come due one by one at half the measured
   throughput, so entry-to-stored latency is not a queue-depth figure;
4. poll-only: every feed polled again and answered 304 Not Modified (feeds/s).

Prints a table and writes bench/results/bench-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import pgstats, stage_cpu  # noqa: E402
from bench.newsweb import NewsWeb, Page, article_path, load_pages, make_plan, page_bytes  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PAGE_BASE = "http://127.0.0.1:8000"

# --- baseline ------------------------------------------------------------------

_PAGES: list[Page] = []


def _bare_one(article: int) -> int:
    """What the pipeline computes for one page, minus HTTP, queue and database."""
    from worker import dedup
    from worker.classify import classify
    from worker.decoding import decode_body
    from worker.extract import extract_article, from_feed_summary
    from worker.urls import canonicalize_url

    page = _PAGES[article % len(_PAGES)]
    url = PAGE_BASE + article_path(_PAGES, article)
    text, _ = decode_body(page_bytes(_PAGES, article), header_charset=None)
    extracted = extract_article(text, url=url)
    if extracted is None or len(extracted.body) < 200:
        extracted = (
            from_feed_summary(title=page.title, summary=page.summary, published_at=None)
            or extracted
        )
    if extracted is None:
        return 0
    canonicalize_url(url, page_canonical=extracted.canonical_url)
    title = extracted.title or page.title
    classify(title=title, body=extracted.body, language=extracted.language)
    dedup.fingerprint(title=title, body=extracted.body, published_at=extracted.published_at)
    return len(extracted.body)


def run_baseline(
    pages: list[Page], articles: list[int], processes: int, *, cores: set[int] | None = None
) -> dict[str, Any]:
    """The bare work over ``articles`` in a pool of ``processes``, on ``cores`` if given
    (``--services-core``: the workers' cores, not the bench's own)."""
    global _PAGES
    _PAGES = pages
    ctx = multiprocessing.get_context("fork")  # children share the loaded pages
    with ctx.Pool(
        processes,
        initializer=os.sched_setaffinity if cores else None,
        initargs=(0, cores) if cores else (),
    ) as pool:
        pool.map(_bare_one, articles[: processes * 2])  # warm up imports and caches
        workers = [p.pid for p in pool._pool if p.pid]  # type: ignore[attr-defined]
        cpu_before = sum(_cpu_s(pid) for pid in workers)
        host_before = _host_ticks()
        cores_before = _host_ticks(cores) if cores else None
        started = time.perf_counter()
        sizes = pool.map(_bare_one, articles, chunksize=4)
        elapsed = time.perf_counter() - started
        host = _host_usage(host_before, _host_ticks())
        cores_host = _host_usage(cores_before, _host_ticks(cores)) if cores_before else None
        cpu = sum(_cpu_s(pid) for pid in workers) - cpu_before
    return {
        "processes": processes,
        "pages": len(articles),
        "seconds": round(elapsed, 2),
        "pages_per_s": round(len(articles) / elapsed, 2),
        "cpu_s": round(cpu, 1),
        "cpu_ms_per_page": round(cpu / len(articles) * 1000, 1),
        "empty": sum(1 for s in sizes if not s),
        "host": host,
        **({"worker_cores_host": cores_host} if cores_host else {}),
    }


def _plan_articles(args: argparse.Namespace) -> list[int]:
    """The article behind every fetch of the burst plan, in plan order."""
    plan = make_plan(feeds=args.feeds, fetches=args.fetches, repeat_fraction=args.repeat_fraction)
    return [a for feed in plan.feeds for a in feed]


def _combine_baselines(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One baseline from the runs before and after the end-to-end phase."""
    pages = sum(r["pages"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    cpu = sum(r["cpu_s"] for r in runs)
    rates = [r["pages_per_s"] for r in runs]
    return {
        "processes": runs[0]["processes"],
        "pages": pages,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 2),
        "cpu_s": round(cpu, 1),
        "cpu_ms_per_page": round(cpu / pages * 1000, 1),
        "empty": sum(r["empty"] for r in runs),
        "host": _weighted_usage(runs, "host", seconds),
        **(
            {"worker_cores_host": _weighted_usage(runs, "worker_cores_host", seconds)}
            if "worker_cores_host" in runs[0]
            else {}
        ),
        "before_after_pages_per_s": rates,
        "drift": round(abs(rates[-1] - rates[0]) / (sum(rates) / len(rates)), 3),
        "runs": runs,
    }


def _weighted_usage(runs: list[dict[str, Any]], key: str, seconds: float) -> dict[str, float]:
    """The runs' core shares under ``key``, weighted by each run's length."""
    return {
        share: round(sum(r[key][share] * r["seconds"] for r in runs) / seconds, 3)
        for share in runs[0][key]
    }


# --- sampling memory ------------------------------------------------------------


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int, *, with_reaped_children: bool = False) -> float:
    """CPU seconds (user + system) of ``pid``, plus its reaped children's if asked.

    CPU time, unlike wall time, does not move when a noisy neighbour slows the
    host down between the end-to-end and the baseline phase of one run.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after "(comm)": state is [0]; utime, stime, cutime, cstime are [11:15].
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def _host_ticks(cores: set[int] | None = None) -> dict[str, int]:
    """CPU ticks from /proc/stat: where the cores' time went, idle included; the whole
    host's, or summed over ``cores``."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    lines = Path("/proc/stat").read_text().splitlines()
    if cores is None:
        rows = [lines[0]]
    else:
        wanted = {f"cpu{c}" for c in cores}
        rows = [line for line in lines if line.split()[0] in wanted]
    totals = dict.fromkeys(names, 0)
    for row in rows:
        for name, value in zip(names, row.split()[1:9], strict=True):
            totals[name] += int(value)
    return totals


def _host_usage(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Shares of the host's core time between two readings: busy, idle, iowait, steal.

    ``idle`` is what the run left unused: processes waiting (on the network, a
    lock, the next task) while no other process had work for that core. ``kernel``
    is the part of ``busy`` spent in the kernel (system calls, interrupts): the bare
    run makes almost none, so in the end-to-end phase it is mostly the sockets to
    Redis, PostgreSQL and the news web, and waking the process at the other end.
    """
    delta = {k: after[k] - before[k] for k in before}
    total = sum(delta.values()) or 1
    busy = total - delta["idle"] - delta["iowait"] - delta["steal"]
    kernel = delta["system"] + delta["irq"] + delta["softirq"]
    return {
        "busy": round(busy / total, 3),
        "kernel": round(kernel / total, 3),
        "idle": round(delta["idle"] / total, 3),
        "iowait": round(delta["iowait"] / total, 3),
        "steal": round(delta["steal"] / total, 3),
    }


class HostSampler(threading.Thread):
    """The host's /proc/stat ticks every ``interval`` seconds, stamped with the wall clock.

    Why: the end-to-end ``host`` shares run from making the feeds due to noticing the
    last entry done (the bench looks once a second), while the ratio's window is the first
    poll to the last entry stored, read from the database afterwards. The start (beat's
    first tick) and the end are mostly idle, so the whole wait overstated the idle that
    costs the ratio anything by about a point. With samples stamped by ``time.time()``,
    the same shares can be taken over the ratio's own window (:func:`_window_usage`).
    """

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._halt = threading.Event()

    def _sample(self) -> None:
        self.samples.append((time.time(), _host_ticks()))

    def start(self) -> None:
        """The first sample now, in the caller's thread: it opens the measured span."""
        self._sample()
        super().start()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        """The last sample now, in the caller's thread: it closes the measured span."""
        self._halt.set()
        self.join(timeout=5)
        self._sample()

    def usage(self) -> dict[str, float]:
        """:func:`_host_usage` from the first sample to the last (the whole span)."""
        return _host_usage(self.samples[0][1], self.samples[-1][1])


def _window_usage(
    samples: Sequence[tuple[float, dict[str, int]]], start: datetime, end: datetime
) -> dict[str, float] | None:
    """:func:`_host_usage` between the first sample at or after ``start`` and the last at
    or before ``end`` (times in the sample's wall clock; a naive datetime is UTC, as the
    database stores it), with the seconds it covers; None if fewer than two fall inside."""
    from worker.store import as_utc

    low, high = as_utc(start).timestamp(), as_utc(end).timestamp()
    inside = [sample for sample in samples if low <= sample[0] <= high]
    if len(inside) < 2:
        return None
    (t0, first), (t1, last) = inside[0], inside[-1]
    return {**_host_usage(first, last), "seconds": round(t1 - t0, 1)}


def _tree_cpu_s(pid: int) -> float:
    """CPU of ``pid`` and all its children, live or reaped."""
    return _cpu_s(pid, with_reaped_children=True) + sum(_cpu_s(c) for c in _children(pid))


def _deployment_cpu_s(
    worker_pids: int | Sequence[int],
    beat_pid: int,
    redis_pid: int,
    postgres_pid: int | None = None,
) -> dict[str, float]:
    """CPU seconds of each part of the deployment, so the overhead can be located.

    ``pool`` is every pool child, live or reaped (recycled by
    ``worker_max_tasks_per_child``): reaped children's CPU is in the main
    process's ``cutime``/``cstime``. With several workers (``--workers``),
    ``worker_main`` and ``pool`` are summed over them. With PostgreSQL, the
    server (postmaster and its backends) is part of the deployment too; SQLite
    runs inside the pool.
    """
    pids = [worker_pids] if isinstance(worker_pids, int) else list(worker_pids)
    main = sum(_cpu_s(pid) for pid in pids)
    parts = {
        "worker_main": main,
        "pool": sum(_tree_cpu_s(pid) for pid in pids) - main,
        "beat": _cpu_s(beat_pid, with_reaped_children=True),
        "redis": _cpu_s(redis_pid),
    }
    if postgres_pid is not None:
        parts["postgres"] = _tree_cpu_s(postgres_pid)
    return parts


def _postmaster_pid(pg: Any) -> int | None:
    try:
        return int((pg.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class RssSampler(threading.Thread):
    """VmRSS of the workers' main processes and pool children, once a second.

    With several workers the "whole worker" figures are the whole fleet's on
    this host, and the per-child ones cover every worker's children.
    """

    def __init__(self, main_pid: int | Sequence[int]) -> None:
        super().__init__(daemon=True)
        self.main_pids = [main_pid] if isinstance(main_pid, int) else list(main_pid)
        self.samples: list[tuple[float, int, str, int]] = []  # (t, pid, role, kB)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            now = time.monotonic()
            processes = [(pid, "main") for pid in self.main_pids] + [
                (c, "child") for main in self.main_pids for c in _children(main)
            ]
            for pid, role in processes:
                kb = _rss_kb(pid)
                if kb is not None:
                    self.samples.append((now, pid, role, kb))
            self._halt.wait(1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def summary(self, start: float, end: float) -> dict[str, Any]:
        children = [s for s in self.samples if s[2] == "child" and start <= s[0] <= end]
        main = [s[3] for s in self.samples if s[2] == "main"]
        peaks: dict[int, int] = {}
        for _t, pid, _role, kb in children:
            peaks[pid] = max(peaks.get(pid, 0), kb)
        # Memory over time: the largest child in each tenth of the run.
        span = max(end - start, 1e-9)
        deciles = [0] * 10
        for t, _pid, _role, kb in children:
            i = min(int((t - start) / span * 10), 9)
            deciles[i] = max(deciles[i], kb)
        warm = max(deciles[1:3] or [0])
        late = max(deciles[-2:] or [0])
        # The whole worker at once (main + pool), each sweep's samples summed:
        # what the host must hold, comparable with a peer's process tree.
        sweeps: dict[float, int] = {}
        for t, _pid, _role, kb in self.samples:
            if start <= t <= end:
                sweeps[t] = sweeps.get(t, 0) + kb
        return {
            "peak_worker_tree_rss_mb": round(max(sweeps.values(), default=0) / 1024, 1),
            "child_processes_seen": len(peaks),
            "peak_child_rss_mb": round(max(peaks.values(), default=0) / 1024, 1),
            "median_child_peak_rss_mb": round(statistics.median(peaks.values()) / 1024, 1)
            if peaks
            else 0,
            "peak_main_rss_mb": round(max(main, default=0) / 1024, 1),
            "child_rss_by_tenth_mb": [round(kb / 1024, 1) for kb in deciles],
            "growth_after_warmup_mb": round((late - warm) / 1024, 1),
        }


class PgActivitySampler(threading.Thread):
    """What the workers' PostgreSQL backends are doing, from ``pg_stat_activity``, twice a second.

    With several workers the question is whether they wait on each other in the
    database (row locks of the dedup lock, LWLocks, I/O) or on the cores. Each
    sample puts every client backend of the bench database in one state: running
    (``active``, no wait event), waiting (``active`` with a wait event, by type),
    ``idle in transaction`` (the worker holds a transaction while it computes) or
    ``idle`` (between transactions). The bench's own progress query (one COUNT a
    second) is among them; the sampler's own connection is not.
    """

    def __init__(
        self,
        conninfo: str,
        database: str,
        *,
        user: str | None = None,
        interval: float = 0.5,
    ) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.database = database
        self.user = user  # only this role's backends (the workers'), when given
        self.interval = interval
        self.samples = 0
        self.states: Counter[str] = Counter()
        self.waits: Counter[str] = Counter()
        self._halt = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._halt.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = %s AND backend_type = 'client backend'"
                    " AND pid <> pg_backend_pid() AND usename = coalesce(%s, usename)",
                    (self.database, self.user),
                ).fetchall()
                self.samples += 1
                for state, wait_type, wait_event in rows:
                    if state == "active" and wait_type is None:
                        self.states["running"] += 1
                    elif state == "active":
                        self.states[f"waiting_{wait_type}"] += 1
                        self.waits[f"{wait_type}:{wait_event}"] += 1
                    else:
                        self.states[str(state).replace(" ", "_")] += 1
                self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        """Mean backends in each state per sample, and the most frequent wait events."""
        n = max(self.samples, 1)
        return {
            "samples": self.samples,
            "mean_backends": {k: round(v / n, 3) for k, v in sorted(self.states.items())},
            "top_waits": {k: round(v / n, 3) for k, v in self.waits.most_common(8)},
        }


def _worker_counts(log: str) -> dict[str, int]:
    """What one worker did, from its own log: entries stored, linked to a known URL, failed."""
    counts: Counter[str] = Counter()
    wanted = {"article_stored", "entry_linked_known_url", "entry_failed"}
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        name = event.get("event") if isinstance(event, dict) else None
        if name in wanted:
            counts[str(name)] += 1
    return {name: counts.get(name, 0) for name in sorted(wanted)}


def _cpus_allowed(pid: int) -> str | None:
    """The cores the kernel lets ``pid`` run on (``Cpus_allowed_list``), to show pinning held."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _cores_besides(services_core: int | None) -> set[int] | None:
    """The cores left for the workers and the bare work when the services (the database,
    Redis, beat, the news web and this process) keep to ``services_core``; None: no split."""
    if services_core is None:
        return None
    return set(os.sched_getaffinity(0)) - {services_core}


def _worker_cores(n: int, pin: bool, allowed: set[int] | None = None) -> list[set[int] | None]:
    """The cores each of ``n`` workers may run on: worker i on core i mod ncpu (``pin``),
    or any. ``allowed``: only those cores (``--services-core`` keeps the others' core
    out); without ``pin`` every worker may use all of them."""
    if not pin:
        return [set(allowed) if allowed is not None else None for _ in range(n)]
    cores = sorted(allowed if allowed is not None else os.sched_getaffinity(0))
    return [{cores[i % len(cores)]} for i in range(n)]


# --- the worker run ---------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[k], 2)


def _wait(predicate: Any, *, timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _entry_progress(feed_ids: list[int]) -> tuple[int, int]:
    """(entries, entries no longer pending): one COUNT query, cheap enough to run each second.

    The full statistics load every entry row; polled each second they would take
    CPU from the system under test.
    """
    import sqlalchemy as sa
    from sqlmodel import col

    from worker.db import session_scope
    from worker.models import Entry

    with session_scope() as session:
        total, done = session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(col(Entry.status) != "pending"),
            ).where(col(Entry.feed_id).in_(feed_ids))
        ).one()
    return int(total), int(done)


def _entry_stats(feed_ids: list[int]) -> dict[str, Any]:
    from sqlmodel import col, select

    from worker.db import session_scope
    from worker.models import Entry, FeedPoll

    with session_scope() as session:
        rows = session.exec(
            select(Entry.status, Entry.error_class, Entry.first_seen_at, Entry.updated_at).where(
                col(Entry.feed_id).in_(feed_ids)
            )
        ).all()
        poll_start = session.exec(
            select(FeedPoll.started_at)
            .where(col(FeedPoll.feed_id).in_(feed_ids))
            .order_by(col(FeedPoll.started_at))
        ).first()
    statuses = Counter(r[0] for r in rows)
    errors = Counter(r[1] for r in rows if r[1])
    latencies = [(r[3] - r[2]).total_seconds() for r in rows if r[0] == "stored"]
    done = [r[3] for r in rows if r[0] != "pending"]
    return {
        "entries": len(rows),
        "statuses": dict(statuses),
        "error_classes": dict(errors),
        "latencies": latencies,
        "first_poll": poll_start,
        "last_done": max(done) if done else None,
    }


def _store_stats() -> dict[str, Any]:
    import sqlalchemy as sa

    from worker.db import session_scope
    from worker.models import Article, Story

    with session_scope() as session:
        articles = session.execute(sa.select(sa.func.count()).select_from(Article)).scalar_one()
        stories = session.execute(sa.select(sa.func.count()).select_from(Story)).scalar_one()
        exact = session.execute(
            sa.select(sa.func.count())
            .select_from(Article)
            .where(Article.duplicate_of_id.isnot(None))  # type: ignore[union-attr]
        ).scalar_one()
        near = session.execute(
            sa.select(sa.func.count()).select_from(Article).where(Article.dedup_reason.isnot(None))  # type: ignore[union-attr]
        ).scalar_one()
        positive = session.execute(
            sa.select(sa.func.count())
            .select_from(Article)
            .where(Article.is_ukraine_security.is_(True))  # type: ignore[attr-defined]
        ).scalar_one()
    return {
        "articles": articles,
        "stories": stories,
        "exact_duplicates": exact,
        "in_existing_story": near,
        "ukraine_security": positive,
    }


def _add_feeds(
    web: NewsWeb, plan_feeds: list[list[int]], prefix: str, due: list[datetime]
) -> list[int]:
    from worker import store
    from worker.db import session_scope
    from worker.models import utcnow

    ids: list[int] = []
    now = utcnow()
    with session_scope() as session:
        for i, articles in enumerate(plan_feeds):
            url = web.publish(f"{prefix}{i}", articles, now=now)
            feed, _ = store.upsert_feed(session, name=f"{prefix}{i}", url=url)
            feed.next_poll_at = due[i]
            session.add(feed)
            session.flush()
            assert feed.id is not None
            ids.append(feed.id)
    return ids


def _make_due(feed_ids: list[int]) -> None:
    import sqlalchemy as sa
    from sqlmodel import col

    from worker.db import session_scope
    from worker.models import Feed, utcnow

    with session_scope() as session:
        session.execute(
            sa.update(Feed).where(col(Feed.id).in_(feed_ids)).values(next_poll_at=utcnow())
        )


def _poll_only_round(feed_ids: list[int], timeout: float) -> dict[str, Any]:
    import sqlalchemy as sa
    from sqlmodel import col, select

    from worker.db import session_scope
    from worker.models import Feed, FeedPoll, utcnow

    with session_scope() as session:
        last_id = session.execute(sa.select(sa.func.max(FeedPoll.id))).scalar_one() or 0
        session.execute(
            sa.update(Feed).where(col(Feed.id).in_(feed_ids)).values(next_poll_at=utcnow())
        )

    def new_polls() -> list[FeedPoll]:
        with session_scope() as session:
            return list(
                session.exec(
                    select(FeedPoll)
                    .where(col(FeedPoll.id) > last_id)
                    .where(col(FeedPoll.feed_id).in_(feed_ids))
                ).all()
            )

    _wait(lambda: len(new_polls()) >= len(feed_ids), timeout=timeout, what="poll-only round")
    polls = new_polls()
    start = min(p.started_at for p in polls)
    end = max(p.finished_at or p.started_at for p in polls)
    seconds = max((end - start).total_seconds(), 1e-3)
    return {
        "feeds": len(polls),
        "not_modified": sum(1 for p in polls if p.status == "not_modified"),
        "seconds": round(seconds, 2),
        "feeds_per_s": round(len(polls) / seconds, 1),
    }


def run_worker(
    args: argparse.Namespace,
    pages: list[Page],
    workdir: Path,
    collect: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """The end-to-end phases; ``collect`` runs against the run's database before it goes.

    bench/peers.py reads the stored bodies with it (a throwaway PostgreSQL is
    gone once this returns).
    """
    from tests.support import services
    from worker import migrate
    from worker.db import dispose_engines
    from worker.models import utcnow
    from worker.settings import reset_settings

    redis = services.start_redis()
    pg: services.PostgresServer | None = None
    pg_stats_wanted = args.db == "postgres" and getattr(args, "pg_stats", False)
    try:
        if args.db == "postgres":
            pg = services.start_postgres(
                fsync=getattr(args, "pg_fsync", False),
                settings=pgstats.SERVER_SETTINGS if pg_stats_wanted else None,
            )
            db_url = pg.create_database("bench")
        else:
            db_url = f"sqlite:///{workdir / 'bench.db'}"
        env = {
            "INGEST_DATABASE_URL": db_url,
            "INGEST_BROKER_URL": redis.url,
            "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            "INGEST_BEAT_INTERVAL_SECONDS": "1",
            # One local host serves every page: a per-host politeness limit
            # (worker/politeness.py, when present) would measure itself.
            "INGEST_PER_HOST_RATE": "100000",
            "INGEST_PER_HOST_BURST": "100000",
            "INGEST_LOG_LEVEL": "INFO",
        }
        os.environ.update(env)
        reset_settings()
        dispose_engines()
        migrate.upgrade(db_url)
        bench_conninfo = (
            f"host=127.0.0.1 port={pg.port} user=postgres dbname=bench" if pg is not None else ""
        )
        if pg is not None and pg_stats_wanted:
            # The workers (and beat) connect as their own role, so the statistics
            # can leave out the bench's own queries (which stay on os.environ's URL).
            pgstats.prepare(bench_conninfo, "bench")
            env = {
                **env,
                "INGEST_DATABASE_URL": db_url.replace(
                    "//postgres@", f"//{pgstats.WORKER_ROLE}@", 1
                ),
            }

        plan = make_plan(
            feeds=args.feeds, fetches=args.fetches, repeat_fraction=args.repeat_fraction
        )
        web = NewsWeb(pages).start()
        try:
            # Feeds come due only once worker and beat are up, so neither's
            # start-up (imports, the extraction warm-up) counts as per-article CPU.
            later = utcnow() + timedelta(days=1)
            burst_ids = _add_feeds(web, plan.feeds, "burst-", [later] * len(plan.feeds))
            # --workers N: N independent `ingest worker` processes, as on N hosts:
            # each its own --hostname and pool, all on the one Redis and database.
            n_workers = max(1, getattr(args, "workers", 1))
            hostnames = [f"w{i + 1}@bench" for i in range(n_workers)]
            # --services-core: the cores the services do not use, set by main() before
            # it pinned this process to the services' core.
            worker_cores: set[int] | None = getattr(args, "worker_cores", None)
            cores = _worker_cores(n_workers, getattr(args, "pin", False), worker_cores)
            # --stage-cpu: the workers run probed (bench/stage_cpu.py) and write
            # their stages' CPU here; beat is not probed.
            stage_dir = workdir / "stage-cpu" if getattr(args, "stage_cpu", False) else None
            worker_env = {**env, stage_cpu.ENV_DIR: str(stage_dir)} if stage_dir else env
            workers: list[services.CeleryProcess] = []
            beat: services.CeleryProcess | None = None
            sampler: RssSampler | None = None
            db_waits: PgActivitySampler | None = None
            try:
                for hostname, cpus in zip(hostnames, cores, strict=True):
                    workers.append(
                        services.start_celery(
                            "worker",
                            worker_env,
                            workdir=workdir,
                            concurrency=args.concurrency,
                            extra=["--hostname", hostname],
                            cpus=cpus,
                            module="bench.stage_cpu" if stage_dir else "worker.cli",
                        )
                    )
                sampler = RssSampler([w.process.pid for w in workers])
                beat = services.start_celery("beat", env, workdir=workdir)
                for one in workers:
                    _wait(lambda one=one: "ready" in one.log(), timeout=120, what="worker ready")
                _wait(lambda: "Starting" in beat.log(), timeout=60, what="beat started")
                time.sleep(2)  # beat's first ticks: nothing is due yet
                sampler.start()
                if pg is not None and (getattr(args, "db_waits", False) or pg_stats_wanted):
                    db_waits = PgActivitySampler(
                        bench_conninfo,
                        "bench",
                        user=pgstats.WORKER_ROLE if pg_stats_wanted else None,
                        interval=1.0 if pg_stats_wanted else 0.5,
                    )
                    db_waits.start()
                pg_stats: pgstats.PgStats | None = None
                if pg is not None and pg_stats_wanted:
                    pg_stats = pgstats.PgStats(bench_conninfo, "bench", pg.port)
                    pg_stats.begin()
                worker_pids = [w.process.pid for w in workers]
                pids = (
                    worker_pids,
                    beat.process.pid,
                    redis.process.pid,
                    _postmaster_pid(pg) if pg is not None else None,
                )
                each0 = [_tree_cpu_s(pid) for pid in worker_pids]
                parts0 = _deployment_cpu_s(*pids)
                stages0 = stage_cpu.read(stage_dir) if stage_dir else {}
                cpu0 = os.times()
                host_sampler = HostSampler()
                host_sampler.start()
                cores0 = _host_ticks(worker_cores) if worker_cores else None
                t0 = time.monotonic()
                _make_due(burst_ids)
                expected = plan.fetches
                last_print = 0.0

                def burst_done() -> bool:
                    nonlocal last_print
                    entries, done = _entry_progress(burst_ids)
                    if time.monotonic() - last_print > 10:
                        last_print = time.monotonic()
                        print(f"  e2e: {done}/{expected} entries done", flush=True)
                    return entries >= expected and done >= expected

                _wait(burst_done, timeout=args.timeout, what="all entries processed", every=1)
                t1 = time.monotonic()
                host_sampler.stop()
                host = host_sampler.usage()
                cores_host = _host_usage(cores0, _host_ticks(worker_cores)) if cores0 else None
                cpu1 = os.times()
                parts1 = _deployment_cpu_s(*pids)
                each1 = [_tree_cpu_s(pid) for pid in worker_pids]
                stages1 = stage_cpu.read(stage_dir) if stage_dir else {}
                if db_waits is not None:
                    db_waits.stop()
                cpu_parts = {k: parts1[k] - parts0[k] for k in parts1}
                tree_cpu = sum(cpu_parts.values())
                burst = _entry_stats(burst_ids)
                seconds = (burst["last_done"] - burst["first_poll"]).total_seconds()
                done = burst["entries"] - burst["statuses"].get("pending", 0)
                # Only the workers' role and sockets count, so the bench's own queries
                # since t1 do not; stopped here to be read per entry done.
                pg_figures = pg_stats.end(articles=done) if pg_stats is not None else None
                e2e = {
                    "entries": burst["entries"],
                    "statuses": burst["statuses"],
                    "error_classes": burst["error_classes"],
                    "seconds": round(seconds, 2),
                    "articles_per_s": round(done / seconds, 2),
                    "latency_p50_s": _pct(burst["latencies"], 50),
                    "latency_p95_s": _pct(burst["latencies"], 95),
                    "web_requests": dict(web.counts),
                    "bench_process_cpu_s": round(
                        (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 1
                    ),
                    # worker (main + pool), beat, redis, PostgreSQL; not the news web
                    "deployment_cpu_s": round(tree_cpu, 1),
                    "cpu_ms_per_article": round(tree_cpu / max(done, 1) * 1000, 1),
                    "host": host,
                    # The same shares over the ratio's own window (HostSampler's docstring).
                    "host_in_window": _window_usage(
                        host_sampler.samples, burst["first_poll"], burst["last_done"]
                    ),
                    **({"worker_cores_host": cores_host} if cores_host else {}),
                    "cpu_ms_per_article_by_process": {
                        k: round(v / max(done, 1) * 1000, 1) for k, v in cpu_parts.items()
                    },
                }
                e2e["workers"] = [
                    {
                        "hostname": hostname,
                        "cpus": sorted(cpus) if cpus is not None else None,
                        # read from the kernel for the main process and its pool
                        "cpus_allowed": sorted(
                            {
                                str(_cpus_allowed(pid))
                                for pid in [one.process.pid, *_children(one.process.pid)]
                            }
                        ),
                        "cpu_s": round(after - before, 1),
                        **_worker_counts(one.log()),
                    }
                    for hostname, cpus, one, before, after in zip(
                        hostnames, cores, workers, each0, each1, strict=True
                    )
                ]
                if stage_dir:
                    e2e["stage_cpu_ms_per_entry"] = stage_cpu.budget(
                        stage_cpu.per_entry(stages0, stages1, entries=done),
                        stage_cpu.per_entry(stages0, stages1, entries=done, clock="wall_s"),
                        pool_ms=e2e["cpu_ms_per_article_by_process"]["pool"],
                        process_wall_ms=seconds * 1000 * args.concurrency * n_workers / done,
                    )
                if db_waits is not None:
                    e2e["db_activity"] = db_waits.summary()
                if pg_figures is not None:
                    e2e["pg_stats"] = pg_figures
                rss = sampler.summary(t0, t1)
                # The rest of the deployment, once, at the end of the burst.
                for role, pid in (("beat", beat.process.pid), ("redis", redis.process.pid)):
                    rss[f"{role}_rss_mb"] = round((_rss_kb(pid) or 0) / 1024, 1)

                # Steady state: feeds come due one by one at half the throughput.
                # bench/peers.py skips it: only the burst is compared there.
                steady_out: dict[str, Any] | None = None
                if not getattr(args, "skip_steady", False):
                    steady_fetches = max(args.fetches // 12, 40)
                    per_feed = 10
                    steady_plan = make_plan(
                        feeds=max(steady_fetches // per_feed, 1),
                        fetches=steady_fetches,
                        repeat_fraction=0.0,
                        first_article=plan.articles,
                    )
                    rate = max(e2e["articles_per_s"] * 0.5, 0.5)
                    span = steady_fetches / rate
                    n = len(steady_plan.feeds)
                    start = utcnow() + timedelta(seconds=2)
                    due = [start + timedelta(seconds=span * i / n) for i in range(n)]
                    steady_ids = _add_feeds(web, steady_plan.feeds, "steady-", due)
                    print(
                        f"  steady: {steady_fetches} entries over {span:.0f}s ({rate:.1f}/s)",
                        flush=True,
                    )

                    def steady_done() -> bool:
                        entries, done = _entry_progress(steady_ids)
                        return entries >= steady_fetches and done >= entries

                    _wait(steady_done, timeout=span + 120, what="steady phase", every=1)
                    steady = _entry_stats(steady_ids)
                    steady_out = {
                        "entries": steady["entries"],
                        "arrival_per_s": round(rate, 2),
                        "statuses": steady["statuses"],
                        "latency_p50_s": _pct(steady["latencies"], 50),
                        "latency_p95_s": _pct(steady["latencies"], 95),
                    }

                rounds = [_poll_only_round(burst_ids, timeout=120) for _ in range(args.poll_rounds)]
                polled = sum(r["feeds"] for r in rounds)
                poll_only: dict[str, Any] | None = (
                    {
                        "rounds": rounds,
                        "feeds_per_s": round(polled / sum(r["seconds"] for r in rounds), 1),
                        "not_modified": sum(r["not_modified"] for r in rounds),
                        "feeds": polled,
                    }
                    if rounds
                    else None
                )
                rss_all = sampler.summary(t0, time.monotonic())
            finally:
                # Stop every process we started, even if one step fails.
                try:
                    for thread in (sampler, db_waits):
                        if thread is not None and thread.is_alive():
                            thread.stop()
                finally:
                    try:
                        if beat is not None:
                            beat.stop()
                    finally:
                        for one in workers:
                            one.stop()
            worker_errors = sum(one.log().count('"level": "error"') for one in workers)
        finally:
            web.stop()
        return {
            "database": args.db,
            "plan": {
                "feeds": args.feeds,
                "fetches": plan.fetches,
                "distinct_urls": plan.articles,
                "repeats": plan.repeats,
                "distinct_pages": len(pages),
            },
            "end_to_end": e2e,
            "store": _store_stats(),
            "memory": rss,
            "memory_whole_run": rss_all,
            "steady": steady_out,
            "poll_only": poll_only,
            "worker_error_log_lines": worker_errors,
            "articles_in_plan": [a for feed in plan.feeds for a in feed],
            "collected": collect() if collect is not None else None,
        }
    finally:
        dispose_engines()
        if pg is not None:
            pg.stop()
        redis.stop()


# --- report -----------------------------------------------------------------------


def _shares(host: dict[str, float] | None) -> str:
    if not host:
        return "-"
    shares = " / ".join(f"{100 * host[k]:.0f} %" for k in ("busy", "idle", "iowait"))
    return f"{shares} (kernel {100 * host['kernel']:.0f} %)" if "kernel" in host else shares


def print_table(result: dict[str, Any]) -> None:
    e2e, base, mem = result["end_to_end"], result["baseline"], result["memory"]
    steady, poll = result["steady"], result["poll_only"]
    rows = [
        ("plan", f"{result['plan']['feeds']} feeds, {result['plan']['fetches']} fetches "
                 f"({result['plan']['distinct_urls']} URLs, {result['plan']['repeats']} repeats, "
                 f"{result['plan']['distinct_pages']} distinct pages), db={result['database']}"),
        ("baseline (bare, pool of "
         f"{base['processes']})", f"{base['pages_per_s']:.1f} pages/s ({base['seconds']} s; "
                                 f"before/after e2e {base.get('before_after_pages_per_s')}, "
                                 f"drift {base.get('drift')})"),
        ("end-to-end (Celery+Redis+DB)", f"{e2e['articles_per_s']:.1f} articles/s "
                                          f"({e2e['seconds']} s)"),
        ("ratio e2e / baseline", f"{result['ratio']:.2f} (target >= 0.80)"),
        ("CPU per page / article", f"{base.get('cpu_ms_per_page', float('nan'))} ms bare, "
                                   f"{e2e['cpu_ms_per_article']} ms end-to-end "
                                   f"(ratio {result['cpu_ratio']:.2f})"),
        ("CPU per article by process", " ".join(
            f"{k} {v}" for k, v in e2e.get("cpu_ms_per_article_by_process", {}).items()
        ) + f"; bench+news web {e2e['bench_process_cpu_s']} s"),
        ("host cores: busy/idle/iowait", f"bare {_shares(base.get('host'))}, "
                                         f"end-to-end {_shares(e2e.get('host'))}, "
                                         f"ratio's window {_shares(e2e.get('host_in_window'))}"),
        ("entry statuses", json.dumps(e2e["statuses"])),
        ("stored", f"{result['store']['articles']} articles, {result['store']['stories']} "
                   f"stories, {result['store']['exact_duplicates']} exact duplicates"),
        ("latency burst p50 / p95", f"{e2e['latency_p50_s']} s / {e2e['latency_p95_s']} s "
                                    f"({e2e['entries']:,} entries queued at once)"),
        ("latency steady p50 / p95", f"{steady['latency_p50_s']} s / {steady['latency_p95_s']} s "
                                     f"(arrivals {steady['arrival_per_s']}/s)"
                                     if steady else "skipped"),
        ("peak RSS per pool process", f"{mem['peak_child_rss_mb']} MB "
                                      f"(median {mem['median_child_peak_rss_mb']} MB, "
                                      f"{mem['child_processes_seen']} processes)"),
        ("RSS growth after warm-up", f"{mem['growth_after_warmup_mb']} MB"),
        ("child RSS by tenth of run", " ".join(f"{v:.0f}" for v in mem["child_rss_by_tenth_mb"])),
        ("poll-only (304)", f"{poll['feeds_per_s']:.1f} feeds/s "
                            f"({poll['not_modified']}/{poll['feeds']} not modified)"
                            if poll else "skipped"),
    ]  # fmt: skip
    if len(e2e.get("workers", [])) > 1:
        rows.append(("per worker: stored, CPU s", ", ".join(
            f"{w['hostname']} {w['article_stored']}, {w['cpu_s']}"
            + (f" (core {','.join(map(str, w['cpus']))})" if w["cpus"] else "")
            for w in e2e["workers"]
        )))  # fmt: skip
    if e2e.get("db_activity"):
        rows.append(("PostgreSQL backends (mean)", json.dumps(
            e2e["db_activity"]["mean_backends"]
        )))  # fmt: skip
        if e2e["db_activity"].get("top_waits"):
            rows.append(("PostgreSQL waits (mean)", json.dumps(e2e["db_activity"]["top_waits"])))
    if e2e.get("pg_stats"):
        per = e2e["pg_stats"]["per_article"]
        rows.append(("PostgreSQL per article", (
            f"{per['statements']} statements, ~{per['round_trips'] or '?'} round trips, "
            f"{per['commits']} commits, {per['begin']} BEGIN, {per['pings']} pings, "
            f"server {per['server_ms']} ms (plan {per['server_plan_ms']})"
        )))  # fmt: skip
    if e2e.get("worker_cores_host"):
        rows.append((f"workers' cores (services on core {result.get('services_core')})", (
            f"bare {_shares(base.get('worker_cores_host'))}, "
            f"end-to-end {_shares(e2e['worker_cores_host'])}"
        )))  # fmt: skip
    stages = e2e.get("stage_cpu_ms_per_entry")
    if stages:
        rows.append(("pool CPU per entry by stage", " ".join(
            f"{k} {v}" for k, v in stages["stages"].items()
        ) + f"; not probed {stages['not_probed']}"))  # fmt: skip
        rows.append(("bare work inside the pool", (
            f"{stages['bare_work']} ms per entry (bare run: "
            f"{base.get('cpu_ms_per_page', float('nan'))} ms per page); the pool adds "
            f"{stages['pool_added']} ms per entry"
        )))  # fmt: skip
        if "waits" in stages:
            rows.append(("pool waits per entry by stage", " ".join(
                f"{k} {v}" for k, v in stages["waits"].items() if abs(v) >= 0.01
            ) + (f"; a process's wall {stages['process_wall']} ms per entry, "
                 f"{stages['outside_stages']} of it outside the stages")))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 feeds, 300 fetches")
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--fetches", type=int, default=5000)
    parser.add_argument("--repeat-fraction", type=float, default=0.05)
    parser.add_argument(
        "--concurrency", type=int, default=os.cpu_count() or 2, help="pool size of each worker"
    )
    parser.add_argument(
        "--workers", type=int, default=1,
        help="independent `ingest worker` processes (--hostname w1@bench, w2@bench, ...), "
        "each with its own pool, sharing the one Redis and database",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action="store_true",
        help="pin worker i (and its pool) to core i mod ncpu, so the cores given are explicit",
    )  # fmt: skip
    parser.add_argument("--skip-steady", action="store_true", help="skip the steady phase")
    parser.add_argument(
        "--db-waits", action="store_true",
        help="with --db postgres: sample pg_stat_activity (running, waiting, idle backends)",
    )  # fmt: skip
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-stats", action="store_true",
        help="with --db postgres: pg_stat_statements, pg_stat_database, round trips and "
        "wait events of the workers over the burst, per article (bench/pgstats.py)",
    )  # fmt: skip
    parser.add_argument(
        "--pg-fsync", action="store_true",
        help="with --db postgres: fsync=on and synchronous_commit=on (default: fsync=off)",
    )  # fmt: skip
    parser.add_argument("--poll-rounds", type=int, default=3, help="0 skips the poll-only phase")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--services-core",
        type=int,
        default=None,
        help="run the database, Redis, beat and the news web on this core only, and the "
        "workers and the bare work on the others (the database with cores of its own)",
    )
    parser.add_argument(
        "--stage-cpu",
        action="store_true",
        help="probe the pool's stages (bench/stage_cpu.py): CPU per entry of fetch, "
        "extract, classify, store, ... beside the bare work's",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    parser.add_argument(
        "--keep-db", type=Path, default=None,
        help="with --db sqlite: keep a backup of the database the run made at this path",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds, args.fetches = 20, 300
    worker_cores: set[int] | None = None
    if args.services_core is not None:
        allowed = os.sched_getaffinity(0)
        if args.services_core not in allowed or len(allowed) < 2:
            parser.error(
                f"--services-core {args.services_core}: needs a core of {sorted(allowed)} "
                "and at least one more for the workers"
            )
        worker_cores = _cores_besides(args.services_core)
        args.worker_cores = worker_cores
        # Everything this process starts from now on (PostgreSQL, Redis, beat) and the
        # news web's threads inherit the services' core; the workers and the bare
        # pool are pinned to the others.
        os.sched_setaffinity(0, {args.services_core})

    if not SHARED_DATA.is_dir():
        print(f"error: {SHARED_DATA} is absent", file=sys.stderr)
        return 2
    pages = load_pages(SHARED_DATA)
    print(f"loaded {len(pages)} pages; {args.feeds} feeds, {args.fetches} fetches", flush=True)
    articles = _plan_articles(args)
    # The baseline brackets the end-to-end phase: half of the pages before it,
    # half after. A host that speeds up or slows down during the run (shared
    # machines drift by up to 25 % within minutes) then moves both sides of the
    # ratio alike, and the two halves show how much it drifted.
    halves = (articles[0::2], articles[1::2])
    # As wide as every worker's pool together: the same number of processes.
    width = args.concurrency * args.workers
    bare: list[dict[str, Any]] = []
    if not args.skip_baseline:
        print(f"baseline (before): {len(halves[0])} pages, pool of {width}", flush=True)
        bare.append(run_baseline(pages, halves[0], width, cores=worker_cores))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        worker_result = run_worker(args, pages, Path(tmp))
        if args.keep_db is not None and args.db == "sqlite":
            # The database the real pipeline made, for bench.db_copy --source.
            from worker.backup import backup_database

            backup_database(f"sqlite:///{Path(tmp) / 'bench.db'}", args.keep_db, overwrite=True)
    worker_result.pop("articles_in_plan")
    worker_result.pop("collected")
    if args.skip_baseline:
        baseline: dict[str, Any] = {"processes": width, "pages_per_s": float("nan"),
                                    "seconds": 0.0}  # fmt: skip
    else:
        print(f"baseline (after): {len(halves[1])} pages, pool of {width}", flush=True)
        bare.append(run_baseline(pages, halves[1], width, cores=worker_cores))
        baseline = _combine_baselines(bare)
    result = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "concurrency": args.concurrency,
        "workers": args.workers,
        "pinned": args.pin,
        "services_core": args.services_core,
        **worker_result,
        "baseline": baseline,
    }
    result["ratio"] = round(
        result["end_to_end"]["articles_per_s"] / baseline["pages_per_s"], 3
    ) if baseline["pages_per_s"] else float("nan")  # fmt: skip
    # The same comparison in CPU time: bare CPU per page over the deployment's
    # CPU per article (worker, pool, beat, redis). It does not count idle cores
    # or the news web's CPU; the wall-clock ratio stays the target.
    result["cpu_ratio"] = round(
        baseline["cpu_ms_per_page"] / result["end_to_end"]["cpu_ms_per_article"], 3
    ) if baseline.get("cpu_ms_per_page") else float("nan")  # fmt: skip
    out = args.out or RESULTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print_table(result)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
