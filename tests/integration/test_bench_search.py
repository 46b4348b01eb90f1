"""The short mode of ``bench/search_scale.py`` on SQLite: the bench that the full-text
search figures in docs/benchmark.md come from still runs and measures what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_search_bench_short_mode(
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.search_scale import QUERIES, main
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    monkeypatch.setenv("INGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    try:
        args = ["--articles", "300", "--writes", "20", "--repeats", "2", "--sqlite-only"]
        assert main([*args, "--data-dir", str(shared_data)]) == 0
    finally:
        reset_settings()
        dispose_engines()
    result = json.loads(capsys.readouterr().out)["sqlite"]
    assert set(QUERIES) <= set(result["query_latency"])
    assert result["matches"]["common word"] > 0
    assert result["writes"]["store_ms_with_index"]["n"] == 20
    assert len(result["migration_seconds"]) == 2
