"""The short mode of ``bench/newsweb_cpu.py``: the news web serves real pages from a child
process and its CPU per request is measured (docs/benchmark.md has the default run)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_newsweb_cpu_bench_short_mode(shared_data: Path) -> None:
    from bench.newsweb_cpu import run

    result = run(60, shared_data)
    assert result["requests"] == 60
    assert result["kb_per_page"] > 1
    assert result["server_cpu_ms_per_request"] >= 0
    assert result["wall_ms_per_request"] > 0
