"""bench/dedup_cpu.py runs, and its two ways of choosing a candidate agree on real pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import dedup_cpu

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_dedup_cpu_bench_reports_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    if not (DATA / "fundus").exists():
        pytest.skip("../shared/data not available")
    # main() asserts that match-on-each and best_match choose the same candidates.
    assert dedup_cpu.main(["--pages", "40", "--candidates", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 articles, 20 candidates each")
    for label in ("query_keys + index_keys", "match on each (baseline)", "best_match"):
        line = next(line for line in out.splitlines() if label in line)
        assert float(re.findall(r"(\d+\.\d+) ms", line)[0]) > 0
