"""The chaos soak's end state: is the work drained, and do the invariants hold?

Read straight from the database (never through the chaos proxy) after the faults
are over. "Lost" and "duplicated" are counted from what the web published, not
from what the worker recorded, so an item the worker never saw counts as lost.
"""

from __future__ import annotations

import statistics
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bench.soakweb import Item


@contextmanager
def _connect(url: str) -> Iterator[sa.Connection]:
    from worker.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _key(item: Item) -> str:
    from worker.feeds import entry_key

    return entry_key(guid=item.guid, url=item.link, title=item.title)


def make_all_feeds_due(url: str) -> None:
    """Poll every feed once more, so items published just before the end are seen."""
    with _connect(url) as conn:
        conn.execute(sa.text("UPDATE feeds SET next_poll_at = CURRENT_TIMESTAMP"))


def _entries(conn: sa.Connection) -> dict[tuple[int, str], sa.Row[Any]]:
    rows = conn.execute(sa.text(
        "SELECT e.feed_id, e.entry_key, e.status, e.error, e.error_class, e.article_id,"
        " a.id AS article, a.created_at AS article_created, a.story_id"
        " FROM entries e LEFT JOIN articles a ON a.id = e.article_id"
    )).all()  # fmt: skip
    return {(int(r.feed_id), str(r.entry_key)): r for r in rows}


def _refresh_crawl_requests() -> list[tuple[int, str]]:
    """Each unfinished request's status as an operator reads it (the listing counts
    progress on read)."""
    from worker import operations

    return [
        (row.id, row.status)
        for row in operations.list_crawl_requests(limit=1000)
        if row.status not in ("done", "failed")
    ]


def drained(url: str, items: list[Item], feed_ids: dict[str, int]) -> dict[str, Any]:
    """Whether every published item has its entry and nothing is left to do."""
    with _connect(url) as conn:
        entries = _entries(conn)
        pending = conn.execute(
            sa.text("SELECT count(*) FROM entries WHERE status = 'pending'")
        ).scalar_one()
    expected = {(feed_ids[i.feed], _key(i)) for i in items}
    missing = len(expected - entries.keys())
    unfinished = _refresh_crawl_requests()
    return {
        "done": missing == 0 and pending == 0 and not unfinished,
        "missing_entries": missing,
        "pending": int(pending),
        "unfinished_crawl_requests": len(unfinished),
    }


def _scalar(conn: sa.Connection, sql: str) -> int:
    return int(conn.execute(sa.text(sql)).scalar_one())


def _extra_rows(conn: sa.Connection, rows: str, key: str) -> int:
    """How many rows of ``rows`` repeat a ``key`` another row already has."""
    return _scalar(conn, f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n"
                         f" FROM {rows} GROUP BY {key} HAVING count(*) > 1) d")  # fmt: skip


def _db_metrics(metrics_url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(metrics_url, timeout=30).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ingest_db_"):
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{label}}}"] = sample.value
    return out


def check_invariants(
    url: str,
    items: list[Item],
    feed_ids: dict[str, int],
    *,
    metrics_url: str | None,
    fault_phase_end: datetime,
) -> dict[str, Any]:
    """Every invariant of the soak, as a report with a list of violations."""
    from worker.classify import classifier_version

    violations: list[str] = []
    with _connect(url) as conn:
        entries = _entries(conn)
        by_status = {
            str(s): int(c)
            for s, c in conn.execute(
                sa.text("SELECT status, count(*) FROM entries GROUP BY status")
            ).all()
        }
        dup_url = _extra_rows(conn, "articles", "canonical_url")
        dup_guid = _extra_rows(conn, "articles WHERE guid IS NOT NULL", "guid")
        dup_entry = _extra_rows(conn, "entries", "feed_id, entry_key")
        miscounted = conn.execute(sa.text(
            "SELECT s.id FROM stories s LEFT JOIN articles a ON a.story_id = s.id"
            " GROUP BY s.id, s.article_count, s.source_count"
            " HAVING count(a.id) <> s.article_count OR count(DISTINCT"
            " coalesce(a.source_domain, a.canonical_url)) <> s.source_count"
        )).all()  # fmt: skip
        orphan_entries = _scalar(conn, "SELECT count(*) FROM entries e LEFT JOIN articles a"
                                 " ON a.id = e.article_id WHERE e.article_id IS NOT NULL"
                                 " AND a.id IS NULL")  # fmt: skip
        articles_without_story = _scalar(
            conn, "SELECT count(*) FROM articles WHERE story_id IS NULL"
        )
        articles = _scalar(conn, "SELECT count(*) FROM articles")
        positives = _scalar(conn, "SELECT count(*) FROM articles WHERE is_ukraine_security")
        stories = _scalar(conn, "SELECT count(*) FROM stories")
        exact = _scalar(conn, "SELECT count(*) FROM articles WHERE duplicate_of_id IS NOT NULL")
        old_version = conn.execute(
            sa.text("SELECT count(*) FROM articles WHERE classifier_version <> :v"),
            {"v": classifier_version()},
        ).scalar_one()
    unfinished = _refresh_crawl_requests()

    lost: list[str] = []
    normal_failed: list[str] = []
    latencies: list[float] = []
    seen: set[tuple[int, str]] = set()
    for item in items:
        key = (feed_ids[item.feed], _key(item))
        row = entries.get(key)
        if row is None:
            lost.append(f"{item.kind} {item.link}: no entry")
            continue
        if key in seen:
            continue
        seen.add(key)
        if row.status == "stored" and row.article is None:
            lost.append(f"{item.link}: stored without its article")
        elif row.status == "failed" and not (row.error or row.error_class):
            lost.append(f"{item.link}: failed without a reason")
        elif row.status not in ("stored", "failed"):
            lost.append(f"{item.link}: still {row.status}")
        elif row.status == "failed" and not item.hostile:
            normal_failed.append(f"{item.kind} {item.link}: {row.error_class}: {row.error}"[:200])
        timely = item.kind in ("fresh", "copy") and item.published_at <= fault_phase_end
        if row.article is not None and timely:
            created = row.article_created
            if isinstance(created, str):  # SQLite hands raw-SQL timestamps back as text
                created = datetime.fromisoformat(created)
            if created.tzinfo is None:
                created = created.replace(tzinfo=item.published_at.tzinfo)
            latencies.append(max(0.0, (created - item.published_at).total_seconds()))

    duplicated = dup_url + dup_guid + dup_entry
    if lost:
        violations.append(f"{len(lost)} items lost, e.g. {lost[:3]}")
    if duplicated:
        violations.append(f"duplicates: {dup_url} by URL, {dup_guid} by GUID, {dup_entry} entries")
    if normal_failed:
        violations.append(f"{len(normal_failed)} ordinary pages failed, e.g. {normal_failed[:3]}")
    if miscounted:
        violations.append(f"{len(miscounted)} stories' counters differ from a recount")
    if by_status.get("pending"):
        violations.append(f"{by_status['pending']} entries stuck pending")
    if unfinished:
        violations.append(f"crawl requests not finished: {unfinished[:5]}")
    if orphan_entries or articles_without_story:
        violations.append(f"{orphan_entries} entries point nowhere, "
                          f"{articles_without_story} articles have no story")  # fmt: skip
    if old_version:
        violations.append(f"{old_version} articles not at the current classifier version")

    metrics = _db_metrics(metrics_url) if metrics_url else {}
    expect = {
        "ingest_db_articles{label=ukraine-security}": positives,
        "ingest_db_articles{label=other}": articles - positives,
        "ingest_db_stories{}": stories,
        "ingest_db_exact_duplicates{}": exact,
        **{f"ingest_db_entries{{status={s}}}": n for s, n in by_status.items()},
    }
    disagree = {
        k: (metrics.get(k), v) for k, v in expect.items() if metrics_url and metrics.get(k) != v
    }
    if disagree:
        violations.append(f"/metrics disagrees with the database (metric, db): {disagree}")

    ordered = sorted(latencies)
    return {
        "entries": len(entries),
        "entries_by_status": by_status,
        "articles": articles,
        "stories": stories,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "duplicated": duplicated,
        "normal_failed": len(normal_failed),
        "normal_failed_examples": normal_failed[:10],
        "latency_samples": len(ordered),
        "latency_p50_s": round(statistics.median(ordered), 1) if ordered else None,
        "latency_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
        "metrics_checked": len(expect),
        "violations": violations,
    }
