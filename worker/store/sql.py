"""SQL helpers every table's writer shares: dialect-aware inserts, a named lock,
JSON-array containment and UTC normalisation.

Kept apart so that each writer module (feeds, polls, entries, articles, crawl
requests) builds its statements the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from ..models import (
    Lock,
)


def table_of(model: type[Any]) -> sa.Table:
    """The Core table behind a SQLModel class (typed for mypy)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


def dialect_insert(session: Session, table: Any) -> Any:
    """A dialect-specific INSERT that supports ``on_conflict_do_nothing``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name!r}")


def run_core(session: Session, statement: Any, params: Any = None) -> Any:
    """Execute a prebuilt Core statement on the session's connection, in its transaction.

    For the statements run once or more per stored article. ``session.execute``
    sends a Core ``INSERT``/``UPDATE`` on an ORM-mapped table through the ORM's
    bulk-persistence path and autoflushes first: it cost more client CPU than the
    statement itself (``bench/profile_store.py``). Only for statements whose rows
    no ORM object loaded in this session mirrors (the identity map is not told).
    """
    return session.connection().execute(statement, params)


def take_lock(session: Session, name: str) -> None:
    """Serialise the rest of this transaction against others taking ``name``.

    One upsert as the first statement: a write, which on SQLite takes the
    database write lock (waiting up to the busy timeout) and on PostgreSQL a
    row lock held until commit. It runs once per stored article, so the
    statement is built once per dialect and reused (no per-call construction
    or cache-key work).
    """
    dialect = session.get_bind().dialect.name
    statement = _LOCK_STATEMENTS.get(dialect)
    if statement is None:
        insert = dialect_insert(session, table_of(Lock))
        statement = _LOCK_STATEMENTS[dialect] = insert.values(
            name=sa.bindparam("lock_name"), counter=1
        ).on_conflict_do_update(
            index_elements=["name"],
            set_={"counter": insert.excluded.counter + table_of(Lock).c.counter},
        )
    run_core(session, statement, {"lock_name": name})


_LOCK_STATEMENTS: dict[str, Any] = {}


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def json_array_contains(session: Session, column: Any, value: str) -> Any:
    """``value in column`` for a JSON array column, on SQLite and PostgreSQL.

    PostgreSQL uses JSONB containment (``@>``), which a GIN index can serve;
    SQLite has no such operator, so it scans the array with ``json_each``.
    """
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(column, postgresql.JSONB).op("@>")(
            sa.cast(sa.literal(f"[{_json_string(value)}]"), postgresql.JSONB)
        )
    items = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(1).select_from(items).where(items.c.value == value))


def _json_string(value: str) -> str:
    import json

    return json.dumps(value)


def check_database(session: Session) -> None:
    """Raise if the database does not answer a trivial query (health checks)."""
    session.execute(sa.text("SELECT 1")).scalar_one()
