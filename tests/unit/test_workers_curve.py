"""The curve's arithmetic (bench/workers_curve.py): means over rounds, speed-up vs 1 worker."""

from __future__ import annotations

from typing import Any

from bench.workers_curve import markdown, summarise


def _point(workers: int, rate: float, *, lock_waits: float = 0.0) -> dict[str, Any]:
    return {
        "workers": workers,
        "articles_per_s": rate,
        "cpu_ms_per_article": 100.0,
        "deployment_cores": 0.9 * workers,
        "host": {"busy": 0.5 * workers},
        "per_worker": [{"core_share": 0.9} for _ in range(workers)],
        "db_activity": {"mean_backends": {"running": 0.2, "waiting_Lock": lock_waits, "idle": 1.0}},
        "load_before": 1.0,
    }


def test_speedup_is_against_the_mean_of_the_one_worker_rounds() -> None:
    rows = summarise([_point(1, 8.0), _point(2, 15.0), _point(2, 17.0), _point(1, 10.0)])
    assert [(r["workers"], r["articles_per_s"], r["speedup"]) for r in rows] == [
        (1, 9.0, 1.0),
        (2, 16.0, 1.78),
    ]
    assert rows[1]["articles_per_s_each"] == [15.0, 17.0]


def test_database_waits_are_averaged_and_a_missing_state_counts_as_zero() -> None:
    points = [_point(3, 10.0, lock_waits=0.5), _point(3, 12.0)]
    points[1]["db_activity"]["mean_backends"].pop("waiting_Lock")
    (row,) = summarise(points)
    assert row["pg_lock_waits"] == 0.25
    assert row["pg_idle_in_transaction"] == 0.0
    assert row["speedup"] is None


def test_markdown_has_one_row_per_worker_count() -> None:
    result = {
        "command": "python -m bench.workers_curve",
        "when": "2026-12-04",
        "cpus": 2,
        "db": "postgres",
        "plan": "40 feeds, 800 fetches",
        "concurrency": 1,
        "pin": True,
        "curve": summarise([_point(1, 8.0), _point(2, 16.0)]),
    }
    table = markdown(result)
    assert "| 1 | 8.0 (8.0) | 1.0x |" in table
    assert "| 2 | 16.0 (16.0) | 2.0x |" in table
