"""bench/fetch_cpu.py runs both clients against the local news web and reports a ratio."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import fetch_cpu

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_fetch_cpu_bench_reports_each_mode_and_the_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not (DATA / "fundus").exists():
        pytest.skip("../shared/data not available")
    assert fetch_cpu.main(["--fetches", "20", "--rounds", "1", "--data-dir", str(DATA)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("20 fetches per mode, 1 round(s)")
    lines = [line.strip() for line in out.splitlines()]
    for client in ("fetcher", "httpx"):
        for mode in ("alone", "with a GIL rival"):
            line = next(line for line in lines if line.startswith(f"{client}, {mode}"))
            assert float(re.findall(r"(\d+\.\d+)", line)[-1]) > 0
    ratio = next(line for line in lines if line.startswith("fetcher / httpx, alone"))
    assert 0 < float(ratio.split()[-1]) < 10
