"""bench/run.py ``--stage-cpu`` in CI mode: the workers run probed on a tiny burst.

Checks what docs/benchmark.md's stage budget rests on: the probed ``ingest worker``
(bench/stage_cpu.py) stores every entry as the plain one does, its pool children
inherit the probes and write their totals, and the stages come out per entry, with
the bare work (extraction above all) the largest part and the deployment's own
stages (poll, fetch, store) present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.bench import run_bench_main

pytestmark = pytest.mark.integration


def test_stage_cpu_splits_the_pools_cpu_by_stage(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.run import main

    out = tmp_path / "bench.json"
    args = ["--feeds", "2", "--fetches", "16", "--db", "sqlite", "--stage-cpu"]
    args += ["--skip-baseline", "--skip-steady", "--poll-rounds", "0", "--out", str(out)]
    assert run_bench_main(main, args, tmp_path=tmp_path, monkeypatch=monkeypatch) == 0
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
    # A stage's wall time is never less than its thread's CPU; the store waits on the
    # database. (How long extraction waited for a core depends on the machine's load.)
    assert all(wait >= -0.05 for wait in table["waits"].values()), table
    assert table["waits"]["store"] > 0, table
    assert 0 < table["outside_stages"] < table["process_wall"], table
    assert table["bare_work"] == pytest.approx(
        sum(stages[s] for s in ("decode", "extract", "canonical", "classify", "fingerprint")),
        abs=0.02,
    )
