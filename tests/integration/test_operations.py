"""The operations both doors call, on a real SQLite database: their refusals, and
what they import (``ingest health`` and the read API build no Celery app)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from worker import operations
from worker.broker import BrokerUnavailableError
from worker.db import session_scope
from worker.models import CrawlRequest
from worker.schemas import FeedIn, RecrawlIn

pytestmark = pytest.mark.integration


def test_feed_operations(sqlite_url: str) -> None:
    feed, created = operations.save_feed(FeedIn(name="kyiv", url="https://kyiv.example/rss"))
    assert created
    assert (feed.name, feed.enabled, feed.state) == ("kyiv", True, "healthy")
    again, created = operations.save_feed(
        FeedIn(name="kyiv", url="https://kyiv.example/rss", tags=["ua"])
    )
    assert (again.id, again.tags, created) == (feed.id, ["ua"], False)
    assert operations.set_feed_enabled("kyiv", enabled=False).state == "disabled"
    assert operations.set_feed_enabled("kyiv", enabled=True).state == "healthy"
    for refused in (
        lambda: operations.get_feed("nope"),
        lambda: operations.set_feed_enabled("nope", enabled=True),
        lambda: operations.remove_feed("nope"),
    ):
        with pytest.raises(operations.NotFoundError, match="unknown feed 'nope'"):
            refused()
    operations.remove_feed("kyiv")
    assert operations.list_feeds() == []


def test_import_refuses_a_bad_file(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(operations.BadInputError, match="no such file"):
        operations.import_feeds(tmp_path / "absent.toml")
    path = tmp_path / "feeds.toml"
    path.write_text('[[feed]]\nname = "a"\nurl = "https://a.example/rss"\n[[feed]]\nname = "b"\n')
    with pytest.raises(operations.BadInputError, match="feed #2: url"):
        operations.import_feeds(path)
    assert operations.list_feeds() == []  # all or nothing


def test_lookups_of_missing_rows(sqlite_url: str) -> None:
    for kind, lookup in (
        ("article", operations.get_article),
        ("story", operations.get_story),
        ("crawl request", operations.crawl_request),
    ):
        with pytest.raises(operations.NotFoundError) as raised:
            lookup(424242)
        assert (raised.value.kind, raised.value.key) == (kind, 424242)


def test_recrawl_refusals_record_nothing(sqlite_url: str, dead_broker: str) -> None:
    """An unknown feed (checked first) or a dead broker: no request on the books."""
    with pytest.raises(operations.NotFoundError, match="unknown feed 'nope'"):
        operations.submit_recrawl(RecrawlIn(feed="nope"))
    operations.save_feed(FeedIn(name="kyiv", url="https://kyiv.example/rss"))
    for request in (
        RecrawlIn(feed="kyiv"),
        RecrawlIn(url="https://kyiv.example/a"),
        RecrawlIn(since="2026-05-01T00:00:00"),
    ):
        with pytest.raises(BrokerUnavailableError, match="broker unreachable"):
            operations.submit_recrawl(request)
    with session_scope() as session:
        assert session.exec(select(CrawlRequest)).all() == []


def test_health_reports_what_is_down(sqlite_url: str, dead_broker: str) -> None:
    report = operations.health()
    assert (report.status, report.database, report.broker) == (
        "degraded",
        "ok",
        "error: unreachable",
    )


IMPORTED = "print(sorted(m for m in {modules!r} if m in sys.modules))"


@pytest.mark.parametrize(
    ("code", "absent"),
    [
        (
            "from worker.cli import main\nsys.argv = ['ingest', 'health']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n",
            ("celery", "fastapi", "worker.tasks", "worker.celery_app"),
        ),
        (
            "from fastapi.testclient import TestClient\nfrom worker.api import create_app\n"
            "client = TestClient(create_app())\n"
            "assert client.get('/articles').status_code == 200\n"
            "assert client.get('/health').status_code == 503\n"
            "assert client.get('/metrics').status_code == 200\n",
            ("celery", "worker.tasks", "worker.celery_app"),
        ),
    ],
    ids=["ingest-health", "api-reads"],
)
def test_checking_and_reading_build_no_celery_app(
    sqlite_url: str, dead_broker: str, code: str, absent: tuple[str, ...]
) -> None:
    """Health checks, reads and metrics import no Celery (no app is built, no broker
    connection pool opened); ``ingest health`` loads no FastAPI either."""
    env = {**os.environ, "INGEST_DATABASE_URL": sqlite_url, "INGEST_BROKER_URL": dead_broker}
    script = "import sys\n" + code + IMPORTED.format(modules=absent)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
