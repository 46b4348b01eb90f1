"""The short mode of ``bench/webhook_latency.py``: real worker, beat and receiver, a
steady stream of stored articles; every Ukraine-security one arrives once, in order,
signed, and soon (the figures in docs/benchmark.md come from the full run)."""

from __future__ import annotations

import argparse
import os

import pytest

from tests.integration.helpers import worker_env

pytestmark = pytest.mark.integration


def test_webhook_latency_bench_short_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.webhook_latency import run
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    # run() points the process at its own database and broker (os.environ): every
    # variable it sets is put back as it was afterwards.
    for name in worker_env("sqlite://", "redis://127.0.0.1:1/0"):
        was = os.environ.get(name)
        monkeypatch.setenv(name, was or "")
        if was is None:
            monkeypatch.delenv(name)
    args = argparse.Namespace(articles=16, rate=4.0, postgres=False, timeout=30.0)
    try:
        result = run(args)
    finally:
        reset_settings()
        dispose_engines()
    assert result["positives"] == 12
    assert result["events"] == 12
    assert result["missing"] == 0
    assert result["all_signatures_valid"]
    assert result["in_order"]
    # The target is p95 <= 5 s (docs/benchmark.md); a loaded test host gets some slack.
    assert result["latency_p95_s"] < 10
