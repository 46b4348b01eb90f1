"""The short mode of ``bench/polls_retention.py`` on PostgreSQL and SQLite: the bench
behind the retention figures in docs/scale-feeds.md loads a poll history, runs the task's
prune function on it, and the rows it leaves are exactly the ones the rule keeps."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_polls_retention_bench_short_mode(
    db: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.polls_retention import main

    if db == "postgres":
        # The bench starts its own cluster; this fixture skips the test (or fails it under
        # CI) where PostgreSQL is missing.
        request.getfixturevalue("postgres_server")
    args = ["--db", db, "--feeds", "150", "--days", "5", "--retention-days", "2",
            "--hours", "2", "--batch", "500"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["ok"] is True
    assert result["database"] == db
    assert set(result["kinds"]) == {"healthy", "failing", "never_ok"}
    loaded = result["load"]["rows"]
    assert loaded > 150 * 4 * 90  # ~96 polls a feed a day
    first = result["first_prune"]
    # More than one batch, and exactly the rule's rows left, feed by feed.
    assert first["deleted"] > 500
    assert first["check"]["feeds_wrong"] == 0
    assert (
        first["check"]["rows_left"] == first["check"]["rows_expected"] == loaded - first["deleted"]
    )
    # Each hour deletes about an hour of polls (4 a feed) and the rule still holds.
    for hour in result["hourly"]:
        assert 0 < hour["deleted"] < 150 * 6
        assert hour["check"]["feeds_wrong"] == 0
        assert hour["check"]["rows_left"] == hour["check"]["rows_expected"]
    assert [idle["deleted"] for idle in result["nothing_to_do"]] == [0, 0]
    assert result["load"]["bytes_per_row"] > 100
