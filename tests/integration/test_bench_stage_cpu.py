"""bench/run.py ``--stage-cpu`` in CI mode: the workers run probed on a tiny burst.

Checks what docs/benchmark.md's stage budget rests on: the probed ``ingest worker``
(bench/stage_cpu.py) stores every entry as the plain one does, its pool children
inherit the probes and write their totals, and the stages come out per entry, with
the bare work (extraction above all) the largest part and the deployment's own
stages (poll, fetch, store) present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_stage_cpu_splits_the_pools_cpu_by_stage(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.run import main
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    out = tmp_path / "bench.json"
    saved = dict(os.environ)  # run_worker points os.environ at its Redis and database
    monkeypatch.setenv("INGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    try:
        args = ["--feeds", "2", "--fetches", "16", "--db", "sqlite", "--stage-cpu"]
        args += ["--skip-baseline", "--skip-steady", "--poll-rounds", "0", "--out", str(out)]
        assert main(args) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        dispose_engines()
    e2e = json.loads(out.read_text())["end_to_end"]
    assert e2e["statuses"] == {"stored": 16}
    table = e2e["stage_cpu_ms_per_entry"]
    stages = table["stages"]
    for stage in ("poll", "fetch", "decode", "extract", "classify", "fingerprint", "store"):
        assert stages[stage] > 0, stages
    assert stages["extract"] > max(stages["fetch"], stages["store"], stages["poll"]), stages
    pool = e2e["cpu_ms_per_article_by_process"]["pool"]
    # The probes see most of the pool's CPU; what they miss is Celery's share.
    assert 0.5 * pool < sum(stages.values()) < 1.1 * pool, (stages, pool)
    # The store and the prefetch thread wait (database, page); extraction does not.
    assert table["waits"]["store"] > 0, table
    assert table["waits"]["extract"] < 0.5 * stages["extract"], table
    assert 0 < table["outside_stages"] < table["process_wall"], table
    assert table["bare_work"] == pytest.approx(
        sum(stages[s] for s in ("decode", "extract", "canonical", "classify", "fingerprint")),
        abs=0.02,
    )
