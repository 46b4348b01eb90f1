"""Shared fixtures: real services (redis-server, PostgreSQL), databases, Redis
databases, a local web server, env and the structured log events of the test.

Services are started once per test session on free loopback ports. When a
service binary is missing the tests that need it are skipped locally, but fail
under CI (``CI=true``) or with ``INGEST_TEST_REQUIRE_SERVICES=1``, so a CI run
can never go green by silently skipping the integration tests.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import services
from tests.support.logs import Events, LogEvents
from worker.localweb import LocalWeb

REPO_ROOT = services.REPO_ROOT
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REQUIRE_SERVICES = os.environ.get("CI") == "true" or bool(
    os.environ.get("INGEST_TEST_REQUIRE_SERVICES")
)


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        _unavailable(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.RedisServer]:
    try:
        server = services.start_redis()
    except services.ServiceUnavailableError as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


# redis-server has databases 0-15; 0 is left alone (a bare URL means it).
REDIS_DB_NUMBERS = range(1, 16)
_redis_db_cycle = itertools.cycle(REDIS_DB_NUMBERS)


@pytest.fixture
def redis_db(redis_server: services.RedisServer) -> Callable[[], str]:
    """Hands out an empty database of the session's redis-server, one per call.

    The numbers go round 1-15 over the session: tests run one at a time and
    stop their workers before they end, so a number is free again once its
    test is over, and it is flushed before it is handed out again. One test may
    hold at most 15.
    """
    import redis

    held: list[int] = []

    def allocate() -> str:
        if len(held) == len(REDIS_DB_NUMBERS):
            pytest.fail(f"a test may use at most {len(REDIS_DB_NUMBERS)} Redis databases")
        number = next(_redis_db_cycle)
        held.append(number)
        url = redis_server.db_url(number)
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        return url

    return allocate


@pytest.fixture
def broker_url(redis_db: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Redis database as the broker of the workers a test starts and of this
    process (the CLI and API under test send their tasks to it)."""
    from worker.settings import reset_settings

    url = redis_db()
    monkeypatch.setenv("INGEST_BROKER_URL", url)
    reset_settings()
    return url


@pytest.fixture
def dead_broker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A broker URL on a loopback port where nothing listens."""
    from worker.settings import reset_settings

    url = f"redis://127.0.0.1:{services.free_port()}/0"
    monkeypatch.setenv("INGEST_BROKER_URL", url)
    reset_settings()
    return url


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    """A local HTTP server standing in for the news web (pages, feeds, routes)."""
    with LocalWeb() as server:
        yield server


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so page handlers that hang on purpose let go of their threads."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture(scope="session", autouse=True)
def _structured_logging() -> None:
    """Configure logging as each worker process does, before any test logs.

    Our loggers keep the processors of the configuration they were first used
    under, so a logger first used unconfigured would print to stdout for the
    rest of the session. Configured, every event reaches the standard library
    as a dict, where :func:`log_events` reads it (``structlog.testing.capture_logs``
    would miss loggers first used before the CLI or the Celery app reconfigured).
    """
    from worker.logging import configure_logging

    configure_logging("INFO")


@pytest.fixture
def log_events(caplog: pytest.LogCaptureFixture) -> LogEvents:
    """The structured events this process has logged during the test so far."""

    def events() -> Events:
        return Events(dict(r.msg) for r in caplog.records if isinstance(r.msg, dict))

    return events


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    try:
        server = services.start_postgres()
    except services.ServiceUnavailableError as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    monkeypatch.setenv("INGEST_DATABASE_URL", url)
    monkeypatch.setenv("INGEST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
    reset_settings()
    dispose_engines()


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database file, set as INGEST_DATABASE_URL."""
    from worker import migrate
    from worker.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'test.db'}"
    _use_database(monkeypatch, url)
    migrate.upgrade(url)
    yield url
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The same test on SQLite and on a throwaway PostgreSQL database."""
    from worker import migrate
    from worker.db import dispose_engines

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        server: services.PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    _use_database(monkeypatch, url)
    migrate.upgrade(url)
    yield url
    dispose_engines()
