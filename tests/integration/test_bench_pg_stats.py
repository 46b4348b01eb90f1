"""bench/run.py ``--db postgres --pg-stats`` in CI mode: a tiny burst on a throwaway cluster.

Checks what the figures of docs/benchmark.md's PostgreSQL section rest on: the cluster
ran with pg_stat_statements, only the workers' role was counted (the bench's own
progress query is not among the statements), and the per-article figures are there
and plausible for the store path (a lock, a commit and the article's insert per
stored article, a handful of round trips).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.bench import run_bench_main

pytestmark = pytest.mark.integration


def test_pg_stats_counts_the_workers_statements_per_article(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.run import main
    from tests.support import services

    try:
        services._pg_bindir()  # the server binaries, before starting anything
    except services.ServiceUnavailableError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "bench.json"
    args = ["--feeds", "2", "--fetches", "16", "--db", "postgres", "--pg-stats"]
    args += ["--skip-baseline", "--skip-steady", "--poll-rounds", "0", "--out", str(out)]
    assert run_bench_main(main, args, tmp_path=tmp_path, monkeypatch=monkeypatch) == 0
    e2e = json.loads(out.read_text())["end_to_end"]
    assert e2e["statuses"] == {"stored": 16}
    stats = e2e["pg_stats"]
    per = stats["per_article"]
    assert stats["articles"] == 16
    assert 3 <= per["statements"] <= 60, per
    assert per["round_trips"] is None or 1 <= per["round_trips"] <= 60, per  # None: no `ss`
    assert 0.5 <= per["commits"] <= 3, per
    assert per["server_ms"] > 0
    queries = [row["query"] for row in stats["top_by_calls"]]
    assert any(q.startswith("INSERT INTO locks") for q in queries), queries
    # The bench's own progress query (a COUNT of entries each second) runs as another role.
    assert not any("count(*)" in q.lower() and "entries" in q for q in queries), queries
    assert e2e["db_activity"]["samples"] > 0
