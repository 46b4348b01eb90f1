"""SQL helpers every table's writer shares: dialect-aware inserts, a named lock,
JSON-array containment and UTC normalisation.

Kept apart so that each writer module (feeds, polls, entries, articles, crawl
requests) builds its statements the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


_PLAIN_ARRAY_LITERAL = re.compile(r"[0-9A-Za-z_:.,-]*")
"""Items joined by commas that PostgreSQL's ``array_in`` reads back unquoted: no quote,
backslash, brace or space in any item (a comma inside one is caught by counting them)."""


def text_array_literal(items: Sequence[str]) -> str:
    """``items`` as a PostgreSQL array literal (``{a,b}``), quoting only when it must.

    For :class:`TextArray`. The store's band keys (``"07:3fa2..."``,
    ``"t3:20261206:9b1c..."``) need no quoting, so the common case is a ``join`` and
    a few scans of the result in C (~5 µs for 74 keys); anything else is quoted item
    by item, as ``array_in`` reads it. Unquoted, an empty item would be refused and one
    spelling ``NULL`` read as a null, so those are quoted too.
    """
    joined = ",".join(items)
    if (
        _PLAIN_ARRAY_LITERAL.fullmatch(joined)
        and joined.count(",") == len(items) - 1
        and "" not in items
        and "null" not in joined.lower()
    ):
        return "{" + joined + "}"
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


class TextArray(sa.types.TypeDecorator[Sequence[str]]):
    """A ``VARCHAR[]`` parameter sent as one array literal, cast by the server.

    Why: the band keys go to PostgreSQL twice per stored article (~75 to look up,
    ~40 to index), and psycopg's list dumper builds the literal in Python item by
    item: 0.065 ms per 74 keys against 0.005 for :func:`text_array_literal`, measured
    client CPU per statement (docs/benchmark.md). The server parses the same
    literal either way (``array_in``). Bind-only: nothing reads these columns back
    through it.
    """

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: Sequence[str] | None, dialect: Any) -> str | None:
        return None if value is None else text_array_literal(value)

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, postgresql.ARRAY(sa.String))


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
