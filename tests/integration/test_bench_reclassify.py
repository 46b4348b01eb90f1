"""The short mode of ``bench/reclassify_scale.py``: the documented ``ingest reclassify`` run by
a real worker over a seeded database relabels every article (the 100k figure in
docs/classifier.md comes from the same code with ``--articles 100000``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from worker.classify import CLASSIFIER_VERSION

pytestmark = pytest.mark.integration


def test_reclassify_bench_short_mode(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.reclassify_scale import run
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    # run() points the process at its own database and broker: restore both afterwards.
    monkeypatch.setenv("INGEST_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("INGEST_BROKER_URL", "redis://127.0.0.1:1/0")
    args = argparse.Namespace(
        articles=400, postgres=False, concurrency=2, full_share=0.5, timeout=300.0,
        data_dir=shared_data,
    )  # fmt: skip
    try:
        result = run(args)
    finally:
        reset_settings()
        dispose_engines()
    assert result["articles"] == 400
    assert result["version"] == CLASSIFIER_VERSION
    assert result["batches"] == 2  # 200 ids per reclassify_batch task
    assert 0 < result["positives_after"] < 400
    assert result["articles_per_second"] > 0
