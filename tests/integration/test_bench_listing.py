"""The short mode of ``bench/listing_scale.py`` on SQLite: the bench that the listing
figures in docs/benchmark.md come from still runs, times both states, and finds the
listing reading migration 0007's indexes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_listing_bench_short_mode(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.listing_scale import main
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    monkeypatch.setenv("INGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    try:
        args = ["--articles", "400", "--rounds", "1", "--repeats", "1", "--writes", "0"]
        assert main([*args, "--sqlite-only", "--synthetic-text"]) == 0
    finally:
        reset_settings()
        dispose_engines()
    result = json.loads(capsys.readouterr().out)["sqlite"]
    assert result["latency"]["halfway page"]["without index"]["n"] == 1
    assert result["latency"]["/changes from 0"]["with index"]["n"] == 1
    assert "ix_articles_newest (<expr><?)" in result["plans"]["halfway page"][0]
    assert "ix_articles_label_newest" in result["plans"]["label, halfway"][0]
    assert "ix_articles_feed_newest" in result["plans"]["feed, halfway"][0]
