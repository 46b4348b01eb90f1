"""bench/workers_curve.py in CI mode: two pinned ``ingest worker`` hosts on a tiny web.

One point of the curve (two workers; the full curve runs 1, 2 and 3), on SQLite to
stay under 30 s: it checks what the curve's figures rest on. Each worker ran under
its own hostname on the core it was given, both stored articles, and their counts
add up to what the database holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.bench import run_bench_main

pytestmark = pytest.mark.integration


def test_workers_curve_two_pinned_hosts(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.workers_curve import main

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning two workers to distinct cores needs two cores")
    out = tmp_path / "workers.json"
    args = ["--workers-list", "2", "--feeds", "2", "--fetches", "16", "--db", "sqlite"]
    args += ["--data-dir", str(shared_data), "--out", str(out)]
    assert run_bench_main(main, args, tmp_path=tmp_path, monkeypatch=monkeypatch) == 0
    result = json.loads(out.read_text())
    (point,) = result["points"]
    assert point["statuses"] == {"stored": 16}
    assert point["worker_error_log_lines"] == 0
    workers = point["per_worker"]
    assert [w["hostname"] for w in workers] == ["w1@bench", "w2@bench"]
    # --pin held: the kernel let each worker and its pool run on its own core only.
    assert [w["cpus_allowed"] for w in workers] == [
        [str(c)] for c in sorted(os.sched_getaffinity(0))[:2]
    ]
    assert all(w["article_stored"] > 0 for w in workers), workers
    # Every entry was done by exactly one of them: stored or linked to a stored URL.
    assert sum(w["article_stored"] + w["entry_linked_known_url"] for w in workers) == 16
    assert sum(w["article_stored"] for w in workers) == point["stored_articles"]
    (row,) = result["curve"]
    assert row["workers"] == 2
    assert row["speedup"] is None  # no 1-worker point to compare with
    assert "| 2 | " in out.with_suffix(".md").read_text()
