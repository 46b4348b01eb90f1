"""The PostgreSQL pool's checks: ping only after idling, reads without a transaction.

``worker.db`` pings a pooled connection only when it was idle longer than
``PING_IDLE_SECONDS`` (instead of on every checkout), and ``read_scope`` runs in
autocommit on PostgreSQL. These tests pin down what that trades: a connection killed
behind the pool's back is replaced by the ping after an idle spell, and otherwise
costs one failed statement, after which the pool reconnects.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc

from tests.support import services
from worker import db

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url(
    postgres_server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    from worker.settings import reset_settings

    url = postgres_server.create_database(f"pool_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("INGEST_DATABASE_URL", url)
    reset_settings()
    db.dispose_engines()
    yield url
    db.dispose_engines()


def _backend_pid(url: str) -> int:
    with db.session_scope(url) as session:
        return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _kill(server: services.PostgresServer, pid: int) -> None:
    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_an_idle_dead_connection_is_replaced_by_the_ping(
    pg_url: str, postgres_server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the idle time the checkout pings, finds the connection dead and takes a new one."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    first = _backend_pid(pg_url)
    _kill(postgres_server, first)
    assert _backend_pid(pg_url) != first  # no error: the ping caught it


def test_a_recently_used_dead_connection_fails_once_then_reconnects(
    pg_url: str, postgres_server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the idle time there is no ping: one statement fails (the task would retry),
    the pool is invalidated, and the next checkout connects afresh."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 3600.0)
    first = _backend_pid(pg_url)
    _kill(postgres_server, first)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        _backend_pid(pg_url)
    assert _backend_pid(pg_url) != first


def test_read_scope_runs_in_autocommit_and_hands_the_connection_back_transactional(
    pg_url: str,
) -> None:
    """No BEGIN/COMMIT round trips for reads; a write session after it is a transaction again."""
    with db.read_scope(pg_url) as session:
        assert session.connection().connection.dbapi_connection.autocommit is True
        pid = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with db.session_scope(pg_url) as session:
        raw = session.connection().connection.dbapi_connection
        assert raw.autocommit is False
        assert session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() == pid
