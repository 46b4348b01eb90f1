"""Engine construction: the one place that knows SQLite from PostgreSQL.

SQLite is made fit for several worker processes: WAL journal (readers never
block the writer), a generous busy timeout (writers queue instead of failing),
and foreign keys on. Engines are cached per URL so a worker process opens one
pool, and rebuilt after ``fork`` (Celery prefork) via :func:`dispose_engines`.

On PostgreSQL every statement is a round trip, and the pipeline runs a few
transactions per entry: a pooled connection is pinged only when it has been
idle for a while (:data:`PING_IDLE_SECONDS`), and reads that need no
transaction can run without ``BEGIN``/``COMMIT`` (:func:`read_scope`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .settings import get_settings

_ENGINES: dict[str, Engine] = {}

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings this service relies on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _configure_sqlite)
        return engine
    engine = sa.create_engine(url, pool_size=5, max_overflow=5)
    sa.event.listen(engine.pool, "checkout", _ping_if_idle)
    sa.event.listen(engine.pool, "checkin", _note_checkin)
    return engine


PING_IDLE_SECONDS = 5.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use.

``pool_pre_ping`` pinged on every checkout: one round trip per transaction, two
or three per entry, to guard against a server restart or a proxy's idle timeout
that a connection used moments ago has almost never met. One that has (the
server restarted within the last seconds) fails its first statement instead; the
disconnect invalidates the pool, and the task's retry of database errors
(``worker.tasks.RETRYABLE``) runs the entry again on a fresh connection: every
write is idempotent, so that costs a retry, not a duplicate or a loss.
"""

_LAST_CHECKIN = "ingest_last_checkin"


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_LAST_CHECKIN] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """The pre-ping for connections idle past :data:`PING_IDLE_SECONDS` (a new one has no mark).

    Raising ``DisconnectionError`` makes the pool drop this connection and check
    out another (SQLAlchemy's pessimistic disconnect handling).
    """
    last = record.info.get(_LAST_CHECKIN)
    if last is None or time.monotonic() - last < PING_IDLE_SECONDS:
        return
    try:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # no BEGIN for the ping (psycopg)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
            dbapi_connection.autocommit = autocommit
    except Exception as exc:  # any failure means: do not use this connection
        raise sa.exc.DisconnectionError(str(exc)) from exc


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    """Drop pooled connections, e.g. in a freshly forked worker child."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()
    _READ_ENGINES.clear()


_READ_ENGINES: dict[str, Engine] = {}


def _read_engine(url: str | None) -> Engine:
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":
        return engine
    key = str(engine.url)
    reader = _READ_ENGINES.get(key)
    if reader is None:
        # Shares the pool; each checkout is switched to autocommit and back on
        # return (psycopg does both on the client, with no round trip).
        reader = _READ_ENGINES[key] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return reader


@contextmanager
def read_scope(url: str | None = None) -> Iterator[Session]:
    """A session for reads (and at most one single-statement write) that need no transaction.

    On PostgreSQL it runs in autocommit: no ``BEGIN`` and ``COMMIT`` round trips.
    Under READ COMMITTED each statement sees its own snapshot either way, so two
    reads here see what they would have seen in one transaction; a write is
    committed by itself, so use this only where each statement stands alone. On
    SQLite, a transaction costs no round trip, and it is the same as
    :func:`session_scope`.
    """
    with _committing(_read_engine(url)) as session:
        yield session


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    with _committing(get_engine(url)) as session:
        yield session


@contextmanager
def _committing(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
