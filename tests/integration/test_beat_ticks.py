"""Beat's periodic tasks while the database is away: one warning per tick, no traceback.

The chaos soak (bench/soak.py) found ``poll_due_feeds`` and ``dispatch_webhooks``
logging an error with a full traceback every beat tick for as long as PostgreSQL was
down. They now skip the tick with a one-line warning; beat's next tick does the work.
"""

from __future__ import annotations

import pytest

from tests.support import services
from tests.support.logs import LogEvents
from worker.db import dispose_engines
from worker.settings import reset_settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("task_name", ["poll_due_feeds", "dispatch_webhooks", "prune_feed_polls"])
def test_a_tick_that_meets_no_database_is_skipped_with_a_warning(
    task_name: str, monkeypatch: pytest.MonkeyPatch, log_events: LogEvents
) -> None:
    from worker import tasks

    nobody = services.free_port()  # nothing listens here: the database is "down"
    monkeypatch.setenv(
        "INGEST_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{nobody}/gone"
    )
    reset_settings()
    dispose_engines()
    try:
        task = tasks.app.tasks[f"worker.tasks.{task_name}"]
        result = task.apply()
        assert result.successful(), result.traceback
        assert result.get() is None
        event = log_events().expect("tick_skipped_database_away", task=f"worker.tasks.{task_name}")
        assert "connection" in event["error"].lower()
        assert "Traceback" not in event["error"]
    finally:
        dispose_engines()
