"""The short mode of ``bench/feeds_scale.py`` on PostgreSQL: the bench behind
docs/scale-feeds.md still runs the real deployment (beat, worker, Redis, PostgreSQL,
the news web), and what it reports comes from real polls, not from its own setup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import services

pytestmark = pytest.mark.integration


def test_feeds_bench_short_mode(
    # The bench starts its own servers; these fixtures skip the test (or fail it under
    # CI) where PostgreSQL, redis-server or the shared pages are missing.
    postgres_server: services.PostgresServer,
    redis_server: services.RedisServer,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.feeds_scale import main
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    for name in ("DATABASE_URL", "BROKER_URL", "BEAT_INTERVAL_SECONDS", "DUE_BATCH_SIZE",
                 "DUE_CLAIMS_PER_TICK", "PER_HOST_RATE", "PER_HOST_BURST",
                 "ALLOW_PRIVATE_NETWORKS", "LOG_LEVEL"):  # fmt: skip
        # The bench sets these in os.environ for its processes: setenv records each
        # one's value now, so it is put back after the test, whatever the bench left.
        monkeypatch.setenv(f"INGEST_{name}", "")
    args = ["--feeds", "40", "--seconds", "4", "--drain", "2", "--beat-interval", "1",
            "--min-interval", "5", "--max-interval", "10", "--change-fraction", "0.3",
            "--batch-size", "4", "--claims-per-tick", "3", "--json"]  # fmt: skip
    try:
        assert main(args) == 0
    finally:
        reset_settings()
        dispose_engines()
    result = json.loads(capsys.readouterr().out)

    assert result["database"] == "postgres"
    assert result["polls"] > 5
    assert result["worker_error_log_lines"] == 0
    assert "error" not in result["poll_statuses"]
    # Conditional GETs were answered 304, and some found a changed feed.
    assert result["web_requests"]["feed_304"] > 0
    assert result["web_requests"]["feed_changed"] > 0
    assert 0 < result["share_304"] < 1
    # Beat's ticks were read from the worker's log, several claims in one tick at
    # batches of 4 (a tick with more than 4 due feeds needs a second claim).
    ticks = result["ticks"]
    assert ticks["count"] > 0
    assert max(ticks["claims"]) > 1
    assert ticks["claim_ms_p50_p95"][0] is not None
    # Costs come from the running services.
    assert result["redis_commands_per_poll"] > 0
    assert result["postgres_per_poll"]["xact_commit"] > 0
    assert result["rows_per_poll"]["feed_polls"] > 0
    assert result["bytes_per_row"]["feed_polls"] > 0
    assert result["lag_s"]["p50"] is not None
