"""The chaos soak's CI version: two minutes of overlapping faults, then every invariant.

``bench/soak.py --minutes 2`` runs the real deployment (Redis, PostgreSQL behind the
chaos proxy, two workers, beat, the API) against the soak's news web while faults are
injected every ~5 s on average, drains, and checks the invariants (docs/reliability.md,
"Chaos soak"). The 30-minute run is the benchmark; this keeps it from rotting.

The seed is fixed so a failure can be replayed (``INGEST_SOAK_SEED`` picks another);
the run's timing still differs from one machine to the next, which is the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _unavailable
from tests.support import services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_two_minutes_of_faults_lose_nothing_and_store_nothing_twice(
    shared_data: Path, tmp_path: Path
) -> None:
    try:
        services._pg_bindir()
    except services.ServiceUnavailableError as exc:
        _unavailable(str(exc))
    if not services.shutil.which("redis-server"):
        _unavailable("redis-server is not installed")
    seed = os.environ.get("INGEST_SOAK_SEED", "20261203")
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--minutes", "2", "--seed", seed, "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert done.returncode == 0, report["violations"] or done.stdout[-3000:]
    assert report["ok"]
    assert report["violations"] == []
    assert report["faults_injected"] >= 10
    assert len(report["faults_by_kind"]) >= 5, report["faults_by_kind"]
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["published"] >= 40
    assert report["entries_by_status"].get("pending", 0) == 0
