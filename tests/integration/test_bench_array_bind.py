"""The short mode of ``bench/array_bind.py``: both bindings of the band keys run against a
real PostgreSQL and are timed (the figure in docs/benchmark.md comes from the default run)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_array_bind_bench_short_mode() -> None:
    from bench.array_bind import run

    result = run(statements=20, rounds=1)
    assert result["keys"] > 40
    assert result["rows_left"] == 0
    timings = result["client_cpu_ms_per_statement"]
    assert set(timings) == {"list", "literal"}
    assert all(t["median"] > 0 for t in timings.values())
