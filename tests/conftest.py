"""Shared fixtures: real services (redis-server, PostgreSQL), databases and env.

Services are started once per test session on free loopback ports. When a
service binary is missing the tests that need it are skipped locally, but fail
under CI (``CI=true``) or with ``INGEST_TEST_REQUIRE_SERVICES=1``, so a CI run
can never go green by silently skipping the integration tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import services

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
