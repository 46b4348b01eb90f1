"""bench/fetch_cpu.py runs against the local news web and leaves httpcore as it found it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import fetch_cpu

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_fetch_cpu_bench_reports_each_mode(capsys: pytest.CaptureFixture[str]) -> None:
    import httpcore._sync.http11 as http11

    if not (DATA / "fundus").exists():
        pytest.skip("../shared/data not available")
    default_read = http11.HTTP11Connection.READ_NUM_BYTES
    assert fetch_cpu.main(["--fetches", "20", "--rounds", "1", "--data-dir", str(DATA)]) == 0
    restored = http11.HTTP11Connection.READ_NUM_BYTES
    assert restored == default_read
    out = capsys.readouterr().out
    assert out.startswith("20 fetches per mode, 1 round(s)")
    for label in ("alone", "with a GIL rival ", "with a GIL rival, 1 MiB reads"):
        line = next(line for line in out.splitlines() if line.strip().startswith(label.strip()))
        assert float(re.findall(r"(\d+\.\d+)", line)[-1]) > 0
