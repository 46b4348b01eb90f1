"""Does storing an article cost more as PostgreSQL grows to 10^5-10^6 articles? (#20, 3b)

Why: the store path runs once per article for the life of a deployment, under the dedup
lock, so a per-article cost that grows with the table would slow every worker down year
after year. This grows one database with the shared bulk loader (``bench.corpus``: rows
shaped like the store path's own, entries, stories, bands and change log included) to
each size in turn, and at each size measures, *side by side* with a reference database
held at the smallest size in the same PostgreSQL cluster (alternating blocks, so a
busy host slows both alike):

* **store cost per article** through the functions the Celery task runs to persist an
  extracted, classified article: ``pipeline.begin_entry`` (load the entry, the
  known-URL check) and ``pipeline.store_entry_article`` (``store.save_article`` under
  the dedup lock + ``store.mark_entries_stored``, one transaction). New stories, exact and
  near copies of recent articles and re-fetches of stored URLs, as in service. Wall
  time, this process's CPU, the PostgreSQL server's CPU, and each SQL statement's time
  (which shows what a cost is made of);
* **dedup lookup** per article: the statements that look for an existing article or
  story (URL, GUID, body hash, LSH band candidates and their signatures); p95;
* ``GET /articles`` and ``GET /changes`` pages through the real FastAPI app (newest
  page, a page halfway down by cursor, the label filter; the change feed from the start
  and from halfway), median and p95;
* **reclassify** throughput: ``pipeline.reclassify_articles`` (what ``ingest
  reclassify``'s tasks run) over batches of 200 stored articles, articles/s;
* **database size per article**: ``pg_total_relation_size`` of each table (with its
  indexes and TOAST) / articles.

    python -m bench.store_scale                          # 10k, 100k, 300k (fsync off)
    python -m bench.store_scale --fsync-on --sizes 10000 100000
    python -m bench.store_scale --million                # adds 1M: ~1.5 h, ~20 GB in /tmp
    python -m bench.store_scale --render out.json        # the Markdown tables of a run

Prints JSON (``--json PATH`` also writes it). Needs ``../shared/data`` (or
``--synthetic-text``) and the PostgreSQL binaries the test suite uses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.corpus import Corpus, CorpusSpec, _edit, number_changes  # noqa: E402
from bench.run import _tree_cpu_s  # noqa: E402

KINDS = ("new", "new", "new", "new", "new", "new", "new", "exact", "near", "refetch")
"""The mix of stored articles: 70 % new stories, 10 % each exact copy, near copy and
re-fetch of a stored URL (the update path)."""
BLOCK = 10
"""Articles stored in one database before switching to the other."""
RECLASSIFY_BATCH = 200  # ids per reclassify_batch task, as ``ingest reclassify`` sends

# SQL statement -> what it is, by a fragment of its text (first match wins).
STATEMENTS = (
    ("INSERT INTO locks", "dedup lock"),
    ("FROM entries", "load entry"),
    ("UPDATE entries", "mark entry stored"),
    ("articles.fetched_at >=", "known-URL check"),
    # One statement since 2026-12-05 (store.articles._LOOKUP): same URL, GUID or body,
    # and the band index's candidates with their signatures.
    ("AS preference", "lookup: URL, GUID, body, band candidates"),
    ("DELETE FROM article_bands", "bands: delete"),
    ("INSERT INTO article_bands", "bands: insert"),
    ("INSERT INTO articles", "article: insert"),
    ("UPDATE articles", "article: update"),
    ("articles.story_id =", "story: same source? / recount"),
    ("FROM articles", "article: read"),
    ("INSERT INTO stories", "story: insert"),
    ("UPDATE stories", "story: update"),
    ("FROM stories", "story: read"),
    ("SELECT 1", "pool ping"),
)
DEDUP_LOOKUPS = {name for _, name in STATEMENTS if name.startswith("lookup:")}


# --- measuring statements ----------------------------------------------------------------


@dataclass
class StatementClock:
    """Milliseconds spent in each kind of SQL statement since the last :meth:`take`."""

    spent: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def attach(self, engine: sa.Engine) -> None:
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, *_args: Any) -> None:
        conn.info["statement_t0"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        ms = (time.perf_counter() - conn.info.pop("statement_t0")) * 1000
        name = next((n for fragment, n in STATEMENTS if fragment in statement), "other")
        self.spent[name] = self.spent.get(name, 0.0) + ms
        self.calls[name] = self.calls.get(name, 0) + 1

    def take(self) -> tuple[dict[str, float], dict[str, int]]:
        spent, calls = self.spent, self.calls
        self.spent, self.calls = {}, {}
        return spent, calls


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "mean": round(statistics.fmean(ordered), 3),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
    }


# --- the two databases -------------------------------------------------------------------


@dataclass
class Database:
    """One database of the cluster: ``ref`` (held at the smallest size) or ``grow``."""

    label: str
    url: str
    loaded: int = 0
    """Corpus articles in it."""
    last_id: int = 0
    """The id of its newest corpus article (stored probes take ids too)."""
    used: set[int] = field(default_factory=set)
    """Articles already copied or re-fetched by a probe: each is taken once, so a
    re-fetch never meets an article fetched moments ago (the known-URL shortcut)."""

    @contextmanager
    def current(self) -> Iterator[None]:
        """Point the settings (what the pipeline's ``session_scope()`` opens) here."""
        from worker.settings import reset_settings

        os.environ["INGEST_DATABASE_URL"] = self.url
        reset_settings()
        yield


def _postmaster(pg: Any) -> int:
    return int((pg.datadir / "postmaster.pid").read_text().split()[0])


# --- the articles stored through the real path ------------------------------------------


def probe_records(
    corpus: Corpus, db: Database, count: int, round_no: int
) -> list[tuple[str, Any, Any]]:
    """``count`` (kind, FeedItem, ArticleRecord) to store in ``db``: the KINDS mix, new
    ones generated as the corpus's next articles would be, copies and re-fetches of
    the database's most recent corpus articles (read back from it)."""
    from worker import dedup, store
    from worker.db import session_scope
    from worker.feeds import FeedItem, entry_key
    from worker.models import Article

    rng = random.Random(7_000 + round_no)
    recent_ids = [i for i in range(max(1, db.last_id - 1_000), db.last_id + 1) if i not in db.used]
    rng.shuffle(recent_ids)
    out: list[tuple[str, Any, Any]] = []
    table = Article.__table__  # type: ignore[attr-defined]
    for j in range(count):
        kind = KINDS[j % len(KINDS)]
        url = f"https://probe{j % 50}.example/{round_no}/{db.label}/{j}"
        if kind == "new":
            made = corpus.article(db.loaded + j, {}, salt=1 + round_no)
            title, body, language = made.title, made.body, made.language
            published, verdict = made.published, made.verdict
        else:
            with session_scope(db.url) as session:
                row = session.execute(
                    sa.select(
                        table.c.title, table.c.body, table.c.language, table.c.published_at,
                        table.c.canonical_url, table.c.is_ukraine_security,
                    ).where(table.c.id == recent_ids[-1])
                ).one()  # fmt: skip
            db.used.add(recent_ids.pop())
            title, body, language = row.title, row.body, row.language or "en"
            published = (row.published_at or corpus.created_at(db.loaded)) + timedelta(hours=1)
            verdict = corpus.model.verdict(rng.randrange(len(corpus.model.items)))
            if kind == "near":
                body = _edit(rng, corpus.model, body, language)
            elif kind == "refetch":
                url = row.canonical_url
                body = body + " Updated with reaction from officials."
        record = store.ArticleRecord(
            url=url, canonical_url=url, feed_id=None, guid=None, title=title, body=body,
            summary=None, author=None, published_at=published, language=language,
            extraction_method="trafilatura",
            fingerprint=dedup.fingerprint(
                title=title, body=body,
                published_at=published or corpus.created_at(db.loaded + j),
            ),
            classification=verdict,
        )  # fmt: skip
        item = FeedItem(
            entry_key=entry_key(guid=None, url=f"{url}#{round_no}", title=title),
            url=url, guid=None, title=title, summary=None, author=None, published_at=published,
        )  # fmt: skip
        out.append((kind, item, record))
    return out


def store_block(
    db: Database,
    probes: list[tuple[str, Any, Any]],
    feed_id: int,
    clock: StatementClock,
    server_pid: int,
) -> dict[str, Any]:
    """Store ``probes`` in ``db`` through the pipeline's functions, one by one; per-article
    samples and the block's CPU (this process, the server)."""
    from worker import pipeline, store
    from worker.db import session_scope
    from worker.settings import get_settings

    with db.current():
        settings = get_settings()
        with session_scope() as session:
            entry_ids = store.add_entries(session, feed_id=feed_id, items=[p[1] for p in probes])
        assert len(entry_ids) == len(probes), "probe entries must be new"
        samples: list[dict[str, Any]] = []
        clock.take()
        cpu0, server0 = time.process_time(), _tree_cpu_s(server_pid)
        for entry_id, (kind, _item, record) in zip(entry_ids, probes, strict=True):
            t0 = time.perf_counter()
            job = pipeline.begin_entry(entry_id=entry_id, settings=settings)
            assert isinstance(job, pipeline.EntryJob), f"entry {entry_id} was not new: {job}"
            saved = pipeline.store_entry_article(
                entry_id=entry_id, record=record, settings=settings, count_attempt=True
            )
            wall = (time.perf_counter() - t0) * 1000
            spent, calls = clock.take()
            samples.append(
                {
                    "kind": kind,
                    "action": saved.action,
                    "wall_ms": wall,
                    "sql": spent,
                    "calls": calls,
                }
            )
        cpu = time.process_time() - cpu0
        server = _tree_cpu_s(server_pid) - server0
    return {"samples": samples, "client_cpu_s": cpu, "server_cpu_s": server}


def measure_store(
    corpus: Corpus,
    grow: Database,
    ref: Database,
    count: int,
    round_no: int,
    clock: StatementClock,
    server_pid: int,
) -> dict[str, Any]:
    """``count`` articles stored in each database, in alternating blocks (ABBA)."""
    from worker import store
    from worker.db import session_scope

    probes = {db.label: probe_records(corpus, db, count, round_no) for db in (grow, ref)}
    feeds = {}
    for db in (grow, ref):
        with session_scope(db.url) as session:
            feed, _ = store.upsert_feed(session, name="probe", url="https://probe.example/rss")
            feeds[db.label] = int(feed.id or 0)
    results: dict[str, dict[str, Any]] = {
        db.label: {"samples": [], "client_cpu_s": 0.0, "server_cpu_s": 0.0} for db in (grow, ref)
    }
    for n, first in enumerate(range(0, count, BLOCK)):
        order = (grow, ref) if n % 2 == 0 else (ref, grow)
        for db in order:
            block = store_block(
                db, probes[db.label][first : first + BLOCK], feeds[db.label], clock, server_pid
            )
            results[db.label]["samples"] += block["samples"]
            results[db.label]["client_cpu_s"] += block["client_cpu_s"]
            results[db.label]["server_cpu_s"] += block["server_cpu_s"]
    out: dict[str, Any] = {}
    for label, result in results.items():
        samples = result["samples"]
        n = len(samples)
        names = sorted({name for s in samples for name in s["sql"]})
        sql_total = sum(sum(s["sql"].values()) for s in samples)
        out[label] = {
            "wall_ms": _summary([s["wall_ms"] for s in samples]),
            "client_cpu_ms": round(result["client_cpu_s"] * 1000 / n, 3),
            "server_cpu_ms": round(result["server_cpu_s"] * 1000 / n, 3),
            "dedup_lookup_ms": _summary(
                [sum(v for k, v in s["sql"].items() if k in DEDUP_LOOKUPS) for s in samples]
            ),
            "sql_ms": round(sql_total / n, 3),
            "statements": {
                name: {
                    "ms": round(sum(s["sql"].get(name, 0.0) for s in samples) / n, 3),
                    "calls": round(sum(s["calls"].get(name, 0) for s in samples) / n, 2),
                    "share_of_sql_time": round(
                        sum(s["sql"].get(name, 0.0) for s in samples) / sql_total, 4
                    ),
                }
                for name in names
            },
            "by_kind_wall_ms": {
                kind: round(statistics.fmean(s["wall_ms"] for s in samples if s["kind"] == kind), 3)
                for kind in sorted(set(KINDS))
            },
            "actions": {
                a: sum(1 for s in samples if s["action"] == a)
                for a in sorted({s["action"] for s in samples})
            },
        }
    g, r = out[grow.label], out[ref.label]
    out["ratio"] = {
        "wall_mean": round(g["wall_ms"]["mean"] / r["wall_ms"]["mean"], 3),
        "wall_median": round(g["wall_ms"]["median"] / r["wall_ms"]["median"], 3),
        "cpu": round(
            (g["client_cpu_ms"] + g["server_cpu_ms"]) / (r["client_cpu_ms"] + r["server_cpu_ms"]),
            3,
        ),
        "dedup_lookup_p95": round(
            g["dedup_lookup_ms"]["p95"] / max(r["dedup_lookup_ms"]["p95"], 1e-9), 3
        ),
    }
    return out


# --- reads: the API pages, reclassify ----------------------------------------------------


def page_cases(db: Database) -> dict[str, Callable[[Any], Any]]:
    """name -> a GET through the test client against ``db``."""
    from bench.listing_scale import halfway_key
    from worker import operations
    from worker.api.cursors import article_cursor

    with db.current():
        deep = article_cursor("published", halfway_key(db.url))
        head = operations.read_changes(after=0, limit=1).head
    return {
        "/articles newest 50": lambda c: c.get("/articles", params={"limit": 50}),
        "/articles halfway (cursor)": lambda c: c.get(
            "/articles", params={"limit": 50, "cursor": deep}
        ),
        "/articles label": lambda c: c.get(
            "/articles", params={"limit": 50, "label": "ukraine-security"}
        ),
        "/changes from 0": lambda c: c.get("/changes", params={"after": 0, "limit": 100}),
        "/changes halfway": lambda c: c.get("/changes", params={"after": head // 2, "limit": 100}),
    }


def measure_pages(grow: Database, ref: Database, repeats: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from worker.api import create_app

    cases = {db.label: page_cases(db) for db in (grow, ref)}
    samples: dict[str, dict[str, list[float]]] = {db.label: {} for db in (grow, ref)}
    with TestClient(create_app()) as client:
        for n in range(2):  # two rounds, ABBA
            for db in (grow, ref) if n % 2 == 0 else (ref, grow):
                with db.current():
                    for name, call in cases[db.label].items():
                        response = call(client)  # warm
                        assert response.status_code == 200, (name, response.text[:300])
                        for _ in range(repeats):
                            t0 = time.perf_counter()
                            call(client)
                            samples[db.label].setdefault(name, []).append(
                                (time.perf_counter() - t0) * 1000
                            )
    return {
        name: {label: _summary(samples[label][name]) for label in samples}
        for name in samples[grow.label]
    }


def measure_reclassify(
    grow: Database, ref: Database, batches: int, size: int = RECLASSIFY_BATCH
) -> dict[str, Any]:
    """Articles per second of ``pipeline.reclassify_articles`` on batches of ``size``
    consecutive ids at spread positions, alternating between the databases."""
    from worker.pipeline import reclassify_articles

    spent = {grow.label: 0.0, ref.label: 0.0}
    done = {grow.label: 0, ref.label: 0}
    for n in range(batches):
        for db in (grow, ref) if n % 2 == 0 else (ref, grow):
            batch = min(size, db.last_id)
            start = 1 + (db.last_id - batch) * (n + 1) // (batches + 1)
            ids = list(range(start, start + batch))
            with db.current():
                t0 = time.perf_counter()
                reclassify_articles(ids)
                spent[db.label] += time.perf_counter() - t0
            done[db.label] += len(ids)
    return {label: round(done[label] / spent[label], 1) for label in spent}


def database_size(url: str) -> dict[str, Any]:
    """Bytes per article: each table with its indexes and TOAST, and the database."""
    from worker.db import get_engine

    tables = ("articles", "article_bands", "stories", "entries", "change_log", "feeds")
    with get_engine(url).connect() as conn:
        articles = int(conn.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())
        sizes = {
            t: int(conn.execute(sa.text(f"SELECT pg_total_relation_size('{t}')")).scalar_one())
            for t in tables
        }
        database = int(
            conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        )
        bands = int(conn.execute(sa.text("SELECT count(*) FROM article_bands")).scalar_one())
    return {
        "articles": articles,
        "band_rows": bands,
        "bytes_per_article": round(sum(sizes.values()) / articles),
        "database_bytes_per_article": round(database / articles),
        "table_mb": {t: round(b / 2**20, 1) for t, b in sizes.items()},
        "table_bytes_per_article": {t: round(b / articles) for t, b in sizes.items()},
    }


# --- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import services
    from worker import migrate
    from worker.db import dispose_engines, get_engine
    from worker.settings import reset_settings

    if args.synthetic_text:
        from bench.corpus import synthetic_pool

        pool = synthetic_pool()
    else:
        from bench.reclassify_scale import text_pool
        from eval.classifier_eval import DEFAULT_DATA_DIR

        pool = text_pool(args.data_dir or DEFAULT_DATA_DIR)
    corpus = Corpus(pool, CorpusSpec(seed=args.seed, feeds=args.feeds))
    sizes = sorted(set(args.sizes + ([1_000_000] if args.million else [])))
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.store_scale", *sys.argv[1:]]),
        "fsync": args.fsync_on,
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "probes_per_database": args.probes,
        "sizes": [],
    }
    saved_url = os.environ.get("INGEST_DATABASE_URL")
    pg = services.start_postgres(fsync=args.fsync_on)
    try:
        server_pid = _postmaster(pg)
        ref = Database("ref", pg.create_database("store_ref"))
        grow = Database("grow", pg.create_database("store_grow"))
        clock = StatementClock()
        for db in (ref, grow):
            migrate.upgrade(db.url)
            clock.attach(get_engine(db.url))
        _log(f"loading ref to {sizes[0]:,}")
        ref.last_id = corpus.load(ref.url, 0, sizes[0]).last_id
        ref.loaded = sizes[0]
        number_changes(ref.url)
        for round_no, size in enumerate(sizes):
            t0 = time.monotonic()
            report = corpus.load(
                grow.url, grow.loaded, size, progress=lambda n: _log(f"grow: {n:,}")
            )
            grow.loaded, grow.last_id = size, report.last_id
            number_changes(grow.url)
            load_s = time.monotonic() - t0
            _log(f"grow at {size:,}: measuring")
            row: dict[str, Any] = {
                "articles": size,
                "load_seconds": round(load_s, 1),
                "loaded": {"stories": report.stories, "bands": report.bands},
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "size": database_size(grow.url),
                "pages": measure_pages(grow, ref, args.repeats),
                "store": measure_store(corpus, grow, ref, args.probes, round_no, clock, server_pid),
                "reclassify_per_s": measure_reclassify(
                    grow, ref, args.reclassify_batches, args.reclassify_batch
                ),
            }
            row["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            out["sizes"].append(row)
            _log(json.dumps({"articles": size, "ratio": row["store"]["ratio"]}))
            if args.json:  # each size as soon as it is measured: a long run may be cut short
                out["load_average_end"] = row["load_average_end"]
                args.json.write_text(json.dumps(out, indent=2))
        out["ref_size"] = database_size(ref.url)
    finally:
        dispose_engines()
        pg.stop()
        if saved_url is None:
            os.environ.pop("INGEST_DATABASE_URL", None)
        else:
            os.environ["INGEST_DATABASE_URL"] = saved_url
        reset_settings()
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- Markdown ----------------------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    """The tables of one run, for docs/scale-store.md."""
    rows = result["sizes"]
    fsync = "on (fsync, synchronous_commit)" if result["fsync"] else "off"
    lines = [
        f"Run of {result['date']}, `{result['command']}`, PostgreSQL fsync {fsync}; "
        f"load average {result['load_average_start']} at the start, "
        f"{result['load_average_end']} at the end, {result['cpus']} cores; "
        f"{result['probes_per_database']} articles stored per database and size.",
        "",
        "| articles | store ms/article, mean (median, p95) | x ref (mean / median) "
        "| CPU ms/article: client + server | x ref (CPU) | dedup lookup p95 ms (ref) "
        "| reclassify articles/s (ref) | bytes/article |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        g, r, ratio = row["store"]["grow"], row["store"]["ref"], row["store"]["ratio"]
        lines.append(
            f"| {row['articles']:,} | {g['wall_ms']['mean']:.1f} ({g['wall_ms']['median']:.1f}, "
            f"{g['wall_ms']['p95']:.1f}) | {ratio['wall_mean']:.3f} / {ratio['wall_median']:.3f} "
            f"| {g['client_cpu_ms']:.1f} + {g['server_cpu_ms']:.1f} | {ratio['cpu']:.3f} "
            f"| {g['dedup_lookup_ms']['p95']:.2f} ({r['dedup_lookup_ms']['p95']:.2f}) "
            f"| {row['reclassify_per_s']['grow']:.0f} ({row['reclassify_per_s']['ref']:.0f}) "
            f"| {row['size']['bytes_per_article']:,} |"
        )
    lines += [
        "",
        "Pages through the FastAPI app, median / p95 ms (the reference database in brackets):",
        "",
    ]
    names = list(rows[0]["pages"])
    lines.append("| articles | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for row in rows:
        cells = [
            f"{row['pages'][n]['grow']['median']:.1f} / {row['pages'][n]['grow']['p95']:.1f} "
            f"({row['pages'][n]['ref']['median']:.1f} / {row['pages'][n]['ref']['p95']:.1f})"
            for n in names
        ]
        lines.append(f"| {row['articles']:,} | " + " | ".join(cells) + " |")
    last = rows[-1]
    lines += [
        "",
        f"Where the store path's SQL time goes at {last['articles']:,} articles (ms and "
        "statements per stored article, share of SQL time):",
        "",
        "| statement | ms | calls | share |",
        "|---|---|---|---|",
    ]
    statements = last["store"]["grow"]["statements"]
    for name, s in sorted(statements.items(), key=lambda kv: -kv[1]["ms"]):
        lines.append(
            f"| {name} | {s['ms']:.2f} | {s['calls']:.2f} | {s['share_of_sql_time']:.1%} |"
        )
    lines += ["", "Size per article by table (bytes, indexes and TOAST included):", ""]
    tables = list(last["size"]["table_bytes_per_article"])
    lines.append("| articles | " + " | ".join(tables) + " | database |")
    lines.append("|---|" + "---|" * (len(tables) + 1))
    for row in rows:
        per = row["size"]["table_bytes_per_article"]
        lines.append(
            f"| {row['articles']:,} | " + " | ".join(f"{per[t]:,}" for t in tables)
            + f" | {row['size']['database_bytes_per_article']:,} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 (~1.5 h, ~20 GB)")
    parser.add_argument("--fsync-on", action="store_true", help="fsync + synchronous_commit")
    parser.add_argument("--probes", type=int, default=300, help="articles stored per database")
    parser.add_argument("--repeats", type=int, default=15, help="GETs per page, per round")
    parser.add_argument("--reclassify-batches", type=int, default=4)
    parser.add_argument("--reclassify-batch", type=int, default=RECLASSIFY_BATCH)
    parser.add_argument("--feeds", type=int, default=CorpusSpec.feeds, help="feeds of the corpus")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--synthetic-text", action="store_true", help="no data (smoke runs)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--render", type=Path, help="print the Markdown of a result file")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())), end="")
        return 0
    # Stopped with SIGTERM (a background run ignores SIGINT): still stop the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
