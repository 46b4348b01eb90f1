"""The short mode of ``bench/beat_idle.py``: real ``ingest beat`` processes, one with each
scheduler, against a real Redis; each sends its schedule's tasks (the figures in
docs/benchmark.md come from the full run)."""

from __future__ import annotations

import pytest

from tests.support import services

pytestmark = pytest.mark.integration


def test_beat_idle_bench_measures_both_schedulers() -> None:
    from bench.beat_idle import SCHEDULERS, measure

    redis = services.start_redis()
    try:
        figures = {
            name: measure(name, redis_url=redis.url, poll_interval=1.0, warm_up=4.0, seconds=3.0)
            for name in SCHEDULERS
        }
    finally:
        redis.stop()
    for got in figures.values():
        # poll_due_feeds and dispatch_webhooks every second: about two a second.
        assert 1.0 <= got["sent_per_s"] <= 3.0, figures
        assert got["cpu_ms_per_s"] >= 0
