"""Peers side by side: the worker against the tools a user would pick instead.

    .venv/bin/python bench/peers.py --peers-python /work/peers-venv/bin/python
    .venv/bin/python bench/peers.py --quick ...     # 20 feeds, 300 fetches
    .venv/bin/python bench/peers.py --feeds 40 --fetches 600 ...   # docs/benchmark.md#peers

One command, one run, the same local news web (bench/newsweb.py: the 436
fundus + article-extraction-benchmark pages behind RSS feeds, syndicated copies
and repeated URLs) and the same plan for every tool, one tool after another:

1. ``ours`` — the real deployment (redis-server, ``ingest worker``, ``ingest
   beat``, SQLite or ``--db postgres``), run by bench/run.py's ``run_worker``;
2. ``plain`` — bench/peer_plain.py, feedparser + httpx + trafilatura in a pool
   of the same width, JSONL out, no dedup, no database;
3. ``news-please`` — bench/peer_newsplease.py, ``NewsPlease.from_urls`` over
   each feed's items, one JSON file per article;
4. ``ours`` again, so the drift of a shared host over the run shows.

Peers run as subprocesses of ``--peers-python`` (their dependencies stay out
of the project's venv; scripts/peers-venv.sh builds it). fundus is not run:
see docs/benchmark.md#peers for why.

For each tool: articles/s (first HTTP request, or first feed poll, to the last
article written), CPU per article (the tool's process tree from /proc: for us
worker + pool + beat + redis-server [+ PostgreSQL], never the news web), peak
RSS of the process tree (sampled every half second), extraction F1 against the
ground truth (4-word shingles, bench/extraction_modes.py), and how often the
same URL or the same page was stored more than once. Prints a table and
writes bench/results/peers-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import run as runbench  # noqa: E402
from bench.extraction_modes import _f1  # noqa: E402
from bench.newsweb import NewsWeb, Page, load_pages, make_plan  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ARTICLE_URL = re.compile(r"/a/(\d+)/(\d+)\.html$")


def ground_truth(shared_data: Path) -> list[str]:
    """The true body of every page, in :func:`bench.newsweb.load_pages`'s order."""
    fundus = json.loads((shared_data / "fundus" / "fundus_ground_truth.json").read_text())
    aeb_path = shared_data / "article-extraction-benchmark" / "ground-truth.json"
    aeb = json.loads(aeb_path.read_text())
    return [fundus[k]["articleBody"] for k in sorted(fundus)] + [
        aeb[k]["articleBody"] for k in sorted(aeb)
    ]


@dataclass
class Record:
    """One article a tool stored: where from and the text it kept."""

    url: str
    body: str
    recognised_duplicate: bool = False


def score(records: list[Record], truths: list[str], articles: int) -> dict[str, Any]:
    """Extraction F1 and duplicates stored, the same way for every tool.

    A page is stored more than once when a repeated URL is stored twice or a
    syndicated copy (another URL, the same page plus a partner paragraph) is
    stored beside its original; ``recognised`` counts the extra copies the tool
    itself marked as duplicates (only ours does). Only the plan's ``articles``
    count: bench/run.py's steady phase stores more after the burst.
    """
    pages: Counter[int] = Counter()
    urls: Counter[str] = Counter()
    f1s: list[float] = []
    recognised = 0
    for record in records:
        match = ARTICLE_URL.search(record.url)
        if match is None or int(match.group(1)) >= articles:
            continue
        page = int(match.group(2))
        pages[page] += 1
        urls[record.url] += 1
        f1s.append(_f1(truths[page], record.body))
        recognised += record.recognised_duplicate
    stored = sum(pages.values())
    return {
        "stored": stored,
        "distinct_pages": len(pages),
        "same_url_again": stored - len(urls),
        "same_page_again": stored - len(pages),
        "recognised_as_duplicates": recognised,
        "mean_f1": round(sum(f1s) / len(f1s), 3) if f1s else None,
        "f1_below_0_5": sum(1 for f in f1s if f < 0.5),
    }


# --- the process tree of a peer ---------------------------------------------------


def _tree(pid: int) -> list[int]:
    out = [pid]
    for child in runbench._children(pid):
        out.extend(_tree(child))
    return out


@dataclass
class TreeSampler:
    """RSS and CPU of a process and its descendants, every half second."""

    pid: int
    peak_rss_kb: int = 0
    peak_process_rss_kb: int = 0
    processes_seen: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def cpu_s(self) -> float:
        """CPU of the live tree, each member's reaped children included."""
        return sum(runbench._cpu_s(p, with_reaped_children=True) for p in _tree(self.pid))

    def _run(self) -> None:
        while not self._halt.is_set():
            pids = _tree(self.pid)
            self.processes_seen.update(pids)
            sizes = [kb for kb in (runbench._rss_kb(p) for p in pids) if kb is not None]
            self.peak_rss_kb = max(self.peak_rss_kb, sum(sizes))
            self.peak_process_rss_kb = max([self.peak_process_rss_kb, *sizes])
            self._halt.wait(0.5)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)


class TimedWeb(NewsWeb):
    """The news web, noting when the tool under test sent its first request."""

    first_request: float | None = None
    on_first_request: Any = None

    def count(self, kind: str) -> None:
        if self.first_request is None:
            self.first_request = time.time()
            if self.on_first_request is not None:
                self.on_first_request()
        super().count(kind)

    def reset(self) -> None:
        self.first_request = None
        self.on_first_request = None
        self.counts.clear()


# --- the tools --------------------------------------------------------------------


def read_jsonl(path: Path) -> tuple[list[Record], float | None]:
    records, last = [], None
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            records.append(Record(row["url"], row.get("body") or ""))
            last = max(last or 0.0, row["written_at"])
    return records, last


def read_newsplease(out: Path) -> tuple[list[Record], float | None]:
    records, last = [], None
    for path in out.glob("*.json"):
        row = json.loads(path.read_text())
        records.append(Record(row["url"], row.get("maintext") or ""))
        last = max(last or 0.0, row["written_at"])
    return records, last


PEERS: dict[str, tuple[str, Any]] = {
    # name: (script in bench/, reader of its output)
    "plain": ("peer_plain.py", read_jsonl),
    "news-please": ("peer_newsplease.py", read_newsplease),
}


def run_peer(
    name: str, python: str, web: TimedWeb, feed_urls: list[str], workdir: Path, processes: int
) -> dict[str, Any]:
    """One peer as a subprocess over the published feeds; its figures and records."""
    script, reader = PEERS[name]
    feeds_file = workdir / f"{name}-feeds.json"
    feeds_file.write_text(json.dumps(feed_urls))
    out = workdir / (f"{name}.jsonl" if reader is read_jsonl else f"{name}-out")
    cmd = [python, str(REPO_ROOT / "bench" / script), "--feeds", str(feeds_file), "--out", str(out)]
    if name == "plain":
        cmd += ["--processes", str(processes)]
    log = (workdir / f"{name}.log").open("w")
    web.reset()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    sampler = TreeSampler(proc.pid).start()
    cpu_at_first: list[float] = []
    web.on_first_request = lambda: cpu_at_first.append(sampler.cpu_s())
    # wait4: the exit status plus the CPU of the whole tree the peer waited for.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop()
    log.close()
    if proc.returncode != 0:
        tail = (workdir / f"{name}.log").read_text()[-2000:]
        raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
    records, last = reader(out)
    if web.first_request is None or last is None:
        raise RuntimeError(f"{name} stored nothing")
    seconds = last - web.first_request
    cpu = usage.ru_utime + usage.ru_stime - (cpu_at_first[0] if cpu_at_first else 0.0)
    return {
        "tool": name,
        "seconds": round(seconds, 2),
        "articles": len(records),
        "articles_per_s": round(len(records) / seconds, 2),
        "cpu_s": round(cpu, 1),
        "cpu_ms_per_article": round(cpu / max(len(records), 1) * 1000, 1),
        "peak_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "peak_process_rss_mb": round(sampler.peak_process_rss_kb / 1024, 1),
        "processes": len(sampler.processes_seen),
        "web_requests": dict(web.counts),
        "records": records,
    }


def _collect_ours() -> list[Record]:
    import sqlalchemy as sa

    from worker.db import session_scope
    from worker.models import Article

    with session_scope() as session:
        rows = session.execute(
            sa.select(Article.url, Article.body, Article.duplicate_of_id, Article.dedup_reason)
        ).all()
    return [Record(r[0], r[1] or "", r[2] is not None or r[3] is not None) for r in rows]


def run_ours(args: argparse.Namespace, pages: list[Page]) -> dict[str, Any]:
    """The deployment over the same plan, by bench/run.py (its own news web, same pages)."""
    ns = argparse.Namespace(
        feeds=args.feeds,
        fetches=args.fetches,
        repeat_fraction=args.repeat_fraction,
        concurrency=args.processes,
        db=args.db,
        poll_rounds=1,
        skip_steady=True,
        timeout=args.timeout,
    )
    with tempfile.TemporaryDirectory(prefix="peers-ours-") as tmp:
        result = runbench.run_worker(ns, pages, Path(tmp), collect=_collect_ours)
    e2e = result["end_to_end"]
    done = e2e["entries"] - e2e["statuses"].get("pending", 0)
    return {
        "tool": f"ours ({args.db})",
        "seconds": e2e["seconds"],
        "articles": done,
        "articles_per_s": e2e["articles_per_s"],
        "cpu_s": e2e["deployment_cpu_s"],
        "cpu_ms_per_article": e2e["cpu_ms_per_article"],
        # worker main + pool at their peak, plus beat and redis-server
        "peak_rss_mb": result["memory"]["peak_worker_tree_rss_mb"]
        + result["memory"]["beat_rss_mb"]
        + result["memory"]["redis_rss_mb"],
        "peak_process_rss_mb": result["memory"]["peak_child_rss_mb"],
        "processes": result["memory"]["child_processes_seen"] + 1,
        "web_requests": e2e["web_requests"],
        "statuses": e2e["statuses"],
        "cpu_ms_per_article_by_process": e2e["cpu_ms_per_article_by_process"],
        "records": result["collected"],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        "tool", "articles/s", "CPU ms/article", "peak RSS MB (tree / largest)",
        "mean F1", "F1<0.5", "stored", "same URL again", "same page again (recognised)",
    )  # fmt: skip
    lines = [head]
    for r in rows:
        s = r["score"]
        lines.append((
            r["tool"], f"{r['articles_per_s']:.1f}", f"{r['cpu_ms_per_article']:.1f}",
            f"{r['peak_rss_mb']:.0f} / {r['peak_process_rss_mb']:.0f}",
            f"{s['mean_f1']}", str(s["f1_below_0_5"]), str(s["stored"]),
            str(s["same_url_again"]), f"{s['same_page_again']} ({s['recognised_as_duplicates']})",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


def decompose(pages: list[Page], count: int) -> dict[str, float]:
    """CPU ms per page of each step, one process: where ours spends more than ``plain``.

    ``plain_extract`` is the plain script's call; the rest is what a pool child
    of ours computes for a page besides HTTP, queue and database.
    """
    import trafilatura

    from worker import dedup
    from worker.classify import classify
    from worker.extract import extract_article

    step = max(len(pages) // count, 1)
    sample = [(p.html.decode("utf-8", "replace"), f"http://127.0.0.1/a/{i}/{i}.html", p)
              for i, p in list(enumerate(pages))[::step][:count]]  # fmt: skip
    for html, url, _ in sample[:5]:  # warm-up: lazy imports, language models
        trafilatura.extract(html, url=url)
        extract_article(html, url=url)
    cpu: dict[str, float] = {"plain_extract": 0.0, "our_extract_without_metadata": 0.0,
                             "our_extract": 0.0, "classify": 0.0, "fingerprint": 0.0}  # fmt: skip
    for html, url, page in sample:
        t = time.process_time()
        trafilatura.extract(html, url=url)
        t0 = time.process_time()
        # worker.extract's call minus with_metadata (date, author, site name):
        # what the metadata we store costs.
        trafilatura.bare_extraction(
            html, url=url, with_metadata=False, include_comments=False, include_tables=False,
            include_images=False, favor_precision=False, deduplicate=False,
        )  # fmt: skip
        cpu["our_extract_without_metadata"] += time.process_time() - t0
        t1 = time.process_time()
        article = extract_article(html, url=url)
        t2 = time.process_time()
        cpu["plain_extract"] += t0 - t
        cpu["our_extract"] += t2 - t1
        if article is None:
            continue
        title = article.title or page.title
        classify(title=title, body=article.body, language=article.language)
        t3 = time.process_time()
        dedup.fingerprint(title=title, body=article.body, published_at=article.published_at)
        t4 = time.process_time()
        cpu["classify"] += t3 - t2
        cpu["fingerprint"] += t4 - t3
    return {k: round(v / len(sample) * 1000, 1) for k, v in cpu.items()}


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 feeds, 300 fetches")
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--fetches", type=int, default=5000)
    parser.add_argument("--repeat-fraction", type=float, default=0.05)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--peers-python", default=sys.executable,
        help="interpreter with the peers installed (scripts/peers-venv.sh)",
    )  # fmt: skip
    parser.add_argument(
        "--tools", default="ours,plain,news-please,ours",
        help="comma-separated, in run order (ours twice brackets the peers)",
    )  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument(
        "--decompose", type=int, default=0, metavar="N",
        help="only time each step of ours and the plain script's extraction over N pages",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds, args.fetches = 20, 300
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t != "ours" and t not in PEERS]
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}; known: ours, {', '.join(PEERS)}")
    if not args.data_dir.is_dir():
        print(f"error: {args.data_dir} is absent", file=sys.stderr)
        return 2

    pages = load_pages(args.data_dir)
    if args.decompose:
        print(json.dumps(decompose(pages, args.decompose)))
        return 0
    truths = ground_truth(args.data_dir)
    plan = make_plan(feeds=args.feeds, fetches=args.fetches, repeat_fraction=args.repeat_fraction)
    print(f"{len(pages)} pages; {args.feeds} feeds, {plan.fetches} fetches; {tools}", flush=True)
    web = TimedWeb(pages).start()
    now = datetime.now(UTC) - timedelta(minutes=5)
    feed_urls = [web.publish(f"peer-{i}", items, now=now) for i, items in enumerate(plan.feeds)]
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
            for tool in tools:
                load = _load()
                print(f"{tool}: running (load {load[0]:.1f})", flush=True)
                if tool == "ours":
                    row = run_ours(args, pages)
                else:
                    row = run_peer(
                        tool, args.peers_python, web, feed_urls, Path(tmp), args.processes
                    )
                row["score"] = score(row.pop("records"), truths, plan.articles)
                row["load_before"] = round(load[0], 2)
                row["load_after"] = round(_load()[0], 2)
                rows.append(row)
                print(
                    f"  {row['articles_per_s']} articles/s, {row['cpu_ms_per_article']} ms CPU"
                    f" per article, F1 {row['score']['mean_f1']}",
                    flush=True,
                )
    finally:
        web.stop()
    result = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "plan": {
            "feeds": args.feeds,
            "fetches": plan.fetches,
            "repeats": plan.repeats,
            "distinct_urls": plan.articles,
            "distinct_pages": len(pages),
        },
        "tools": rows,
    }
    out = args.out or RESULTS_DIR / f"peers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print_table(rows)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
