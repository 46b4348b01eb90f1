"""Throughput against the number of worker hosts: 1 -> 2 -> 3 ``ingest worker`` processes.

    .venv/bin/python -m bench.workers_curve                      # PostgreSQL, 1,2,3 workers, pinned
    .venv/bin/python -m bench.workers_curve --rounds 2           # 1,2,3 then 3,2,1 (drift cancels)
    .venv/bin/python -m bench.workers_curve --workers-list 1,2 --feeds 3 --fetches 24 --db sqlite

Each point is one bench/run.py end-to-end burst (``run_worker``: its own redis-server,
database, news web, ``ingest beat``) with N independent ``ingest worker`` processes,
each with its own ``--hostname`` (w1@bench, ...) and its own pool of ``--concurrency``
processes, as N worker hosts would run against one Redis and one PostgreSQL. The load
is the same at every point: the same plan of feeds and article fetches, a fresh
database each time. With ``--pin`` (the default) worker i and its pool may run only on
core i mod ncpu, so "the cores given" is explicit: 1 worker gets one core, 2 get two,
and on a 2-core host a third shares a core with the first. Beat, Redis, PostgreSQL and
the news web are not pinned: they run wherever the scheduler puts them.

For each point it reports articles/s, the speed-up against the 1-worker mean, CPU per
article (the whole deployment, and by process), how busy each worker's core was, the
host's busy share, and what the PostgreSQL backends were doing (running, waiting on a
lock, idle in a transaction): enough to say what limits the curve. Writes JSON and a
Markdown table (bench/results/workers-<time>.{json,md} unless ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import run as runbench  # noqa: E402
from bench.newsweb import load_pages  # noqa: E402


def run_point(args: argparse.Namespace, pages: list[Any], workers: int) -> dict[str, Any]:
    """One burst with ``workers`` worker processes; the figures the curve needs."""
    ns = argparse.Namespace(
        feeds=args.feeds,
        fetches=args.fetches,
        repeat_fraction=args.repeat_fraction,
        concurrency=args.concurrency,
        workers=workers,
        pin=args.pin,
        db=args.db,
        db_waits=True,
        poll_rounds=0,
        skip_steady=True,
        timeout=args.timeout,
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="workers-curve-") as tmp:
        result = runbench.run_worker(ns, pages, Path(tmp))
    e2e = result["end_to_end"]
    done = e2e["entries"] - e2e["statuses"].get("pending", 0)
    seconds = e2e["seconds"]
    # Worker CPU over the burst's wall time: 1.0 = one core busy all along.
    for w in e2e["workers"]:
        w["core_share"] = round(w["cpu_s"] / seconds, 2) if seconds else None
    return {
        "workers": workers,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "entries_done": done,
        "statuses": e2e["statuses"],
        "stored_articles": result["store"]["articles"],
        "seconds": seconds,
        "articles_per_s": e2e["articles_per_s"],
        "cpu_ms_per_article": e2e["cpu_ms_per_article"],
        "cpu_ms_per_article_by_process": e2e["cpu_ms_per_article_by_process"],
        # the whole deployment's CPU over wall time: cores it kept busy on average
        "deployment_cores": round(e2e["deployment_cpu_s"] / seconds, 2) if seconds else None,
        "host": e2e["host"],
        "per_worker": e2e["workers"],
        "db_activity": e2e.get("db_activity"),
        "latency_p50_s": e2e["latency_p50_s"],
        "peak_worker_tree_rss_mb": result["memory"]["peak_worker_tree_rss_mb"],
        "worker_error_log_lines": result["worker_error_log_lines"],
    }


def summarise(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per worker count: mean articles/s over its rounds and speed-up vs 1 worker."""
    counts = sorted({p["workers"] for p in points})
    rows: list[dict[str, Any]] = []
    for n in counts:
        mine = [p for p in points if p["workers"] == n]
        rows.append(
            {
                "workers": n,
                "rounds": len(mine),
                "articles_per_s": round(statistics.mean(p["articles_per_s"] for p in mine), 2),
                "articles_per_s_each": [p["articles_per_s"] for p in mine],
                "cpu_ms_per_article": round(
                    statistics.mean(p["cpu_ms_per_article"] for p in mine), 1
                ),
                "deployment_cores": round(
                    statistics.mean(p["deployment_cores"] or 0 for p in mine), 2
                ),
                "host_busy": round(statistics.mean(p["host"]["busy"] for p in mine), 3),
                "worker_core_share": round(
                    statistics.mean(w["core_share"] or 0 for p in mine for w in p["per_worker"]),
                    2,
                ),
                "pg_running": _mean_backends(mine, "running"),
                "pg_lock_waits": _mean_backends(mine, "waiting_Lock"),
                "pg_idle_in_transaction": _mean_backends(mine, "idle_in_transaction"),
                "load": [p["load_before"] for p in mine],
            }
        )
    base = next((r["articles_per_s"] for r in rows if r["workers"] == 1), None)
    for row in rows:
        row["speedup"] = round(row["articles_per_s"] / base, 2) if base else None
    return rows


def _mean_backends(points: list[dict[str, Any]], state: str) -> float | None:
    values = [p["db_activity"]["mean_backends"].get(state, 0.0) for p in points if p["db_activity"]]
    return round(statistics.mean(values), 3) if values else None


def markdown(result: dict[str, Any]) -> str:
    """The curve as a Markdown table, for docs/scale-workers.md."""
    lines = [
        f"`{result['command']}`, {result['when']}, {result['cpus']} cores, "
        f"db={result['db']}, {result['plan']}, concurrency {result['concurrency']} per worker, "
        f"pinned={result['pin']}.",
        "",
        "| workers | articles/s (each round) | speed-up | CPU ms / article | deployment cores | "
        "host busy | worker core share | PG running / lock-waiting / idle in txn | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["curve"]:
        pg = (
            f"{r['pg_running']} / {r['pg_lock_waits']} / {r['pg_idle_in_transaction']}"
            if r["pg_running"] is not None
            else "-"
        )
        each = ", ".join(map(str, r["articles_per_s_each"]))
        lines.append(
            f"| {r['workers']} | {r['articles_per_s']} ({each}) | {r['speedup']}x | "
            f"{r['cpu_ms_per_article']} | {r['deployment_cores']} | "
            f"{100 * r['host_busy']:.0f} % | {r['worker_core_share']} | {pg} | "
            f"{', '.join(map(str, r['load']))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers-list", default="1,2,3", help="worker counts, in run order")
    parser.add_argument("--rounds", type=int, default=1, help="2: the list, then reversed")
    parser.add_argument("--feeds", type=int, default=40)
    parser.add_argument("--fetches", type=int, default=800)
    parser.add_argument("--repeat-fraction", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=1, help="pool size of each worker")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let the scheduler place workers"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--data-dir", type=Path, default=runbench.SHARED_DATA)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (.md beside it)")
    args = parser.parse_args(argv)
    order = [int(n) for n in args.workers_list.split(",") if n.strip()]
    if not order or min(order) < 1:
        parser.error("--workers-list takes positive counts, e.g. 1,2,3")
    if not args.data_dir.is_dir():
        print(f"error: {args.data_dir} is absent", file=sys.stderr)
        return 2
    pages = load_pages(args.data_dir)
    runs = [n for r in range(args.rounds) for n in (order if r % 2 == 0 else order[::-1])]
    points: list[dict[str, Any]] = []
    for n in runs:
        print(f"{n} worker(s): {args.fetches} fetches, load {os.getloadavg()[0]:.1f}", flush=True)
        point = run_point(args, pages, n)
        points.append(point)
        print(
            f"  {point['articles_per_s']} articles/s, {point['cpu_ms_per_article']} ms CPU/article,"
            f" host busy {100 * point['host']['busy']:.0f} %,"
            f" per worker {[w['article_stored'] for w in point['per_worker']]} stored",
            flush=True,
        )
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python -m bench.workers_curve " + " ".join(argv or sys.argv[1:]),
        "cpus": os.cpu_count(),
        "db": args.db,
        "plan": f"{args.feeds} feeds, {args.fetches} fetches",
        "concurrency": args.concurrency,
        "pin": args.pin,
        "curve": summarise(points),
        "points": points,
    }
    out = args.out or runbench.RESULTS_DIR / f"workers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(table)
    print()
    print(table)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
