"""The short mode of ``bench/profile_poll.py``: real polls of the news web's feeds into a
fresh database, with their CPU split by part (docs/benchmark.md has the default run)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_profile_poll_short_mode(shared_data: Path, db: str) -> None:
    from bench.profile_poll import ITEMS_PER_FEED, run

    result = run(6, db=db, data_dir=shared_data)
    assert result["polls"] == 6
    assert result["new_entries"] == 6 * ITEMS_PER_FEED
    parts = result["client_cpu_ms_by_part"]
    assert {"fetch", "parse", "start", "record", "other"} <= set(parts)
    assert all(parts[name] > 0 for name in ("fetch", "parse", "start", "record"))
    assert result["client_cpu_ms_per_poll"] >= sum(
        parts[name] for name in ("fetch", "parse", "start", "record")
    )
    if db == "postgres":
        assert result["server_cpu_ms_per_poll"] > 0
    else:
        assert result["server_cpu_ms_per_poll"] is None
