"""bench/run.py ``--services-core`` in CI mode: the database's side and the workers' apart.

With ``--services-core C`` the services (the database, Redis, beat, the news web) keep to
core C and the workers and the bare pool to the others, as when the database has cores
of its own. Checks that the kernel really held the workers to their cores, that the
shares of those cores are reported, and that the bench process got its cores back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.bench import run_bench_main

pytestmark = pytest.mark.integration


def test_services_core_keeps_the_workers_off_the_services_core(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.run import main

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("splitting services from workers needs two cores")
    services_core = cores[-1]
    out = tmp_path / "bench.json"
    args = ["--feeds", "2", "--fetches", "16", "--db", "sqlite", "--poll-rounds", "0"]
    args += ["--skip-steady", "--services-core", str(services_core), "--out", str(out)]
    assert run_bench_main(main, args, tmp_path=tmp_path, monkeypatch=monkeypatch) == 0
    assert sorted(os.sched_getaffinity(0)) == cores
    result = json.loads(out.read_text())
    assert result["services_core"] == services_core
    e2e = result["end_to_end"]
    assert e2e["statuses"] == {"stored": 16}
    (worker,) = e2e["workers"]
    # The main process and every pool child, as the kernel reports them.
    (allowed,) = worker["cpus_allowed"]
    assert _core_list(allowed) == set(cores) - {services_core}, worker
    for usage in (e2e["worker_cores_host"], result["baseline"]["worker_cores_host"]):
        assert 0 < usage["busy"] <= 1, usage
        assert 0 <= usage["idle"] <= 1, usage


def _core_list(text: str) -> set[int]:
    """The kernel's ``Cpus_allowed_list`` ("0-2,5") as a set of cores."""
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found
