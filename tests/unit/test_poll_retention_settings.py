"""INGEST_FEED_POLLS_RETENTION_DAYS and the hourly beat entry that applies it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.support.cli import exit_of_ingest
from worker.settings import Settings


def test_the_retention_is_14_days_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_FEED_POLLS_RETENTION_DAYS", raising=False)
    assert Settings().feed_polls_retention_days == 14
    monkeypatch.setenv("INGEST_FEED_POLLS_RETENTION_DAYS", "30")
    assert Settings().feed_polls_retention_days == 30


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "two weeks"])
def test_a_retention_below_one_day_or_not_whole_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_FEED_POLLS_RETENTION_DAYS", value)
    with pytest.raises(ValidationError, match="feed_polls_retention_days"):
        Settings()


def test_the_cli_names_the_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGEST_FEED_POLLS_RETENTION_DAYS", "0")
    code, stderr = exit_of_ingest(monkeypatch, capsys, "health")
    assert code == 2
    err = " ".join(stderr.split())  # the console wraps long lines
    assert "INGEST_FEED_POLLS_RETENTION_DAYS: Input should be greater than or equal to 1" in err


def test_beat_runs_the_prune_hourly() -> None:
    from worker.celery_app import make_celery

    entry = make_celery(Settings()).conf.beat_schedule["prune-feed-polls"]
    assert entry["task"] == "worker.tasks.prune_feed_polls"
    assert entry["schedule"] == 3600.0
    assert entry["options"]["expires"] <= 3600.0
