"""Copy a whole database into another (``ingest db copy``): how a deployment that
started on the embedded SQLite default moves to PostgreSQL.

The copy is a *sync*, not a dump: each table is walked in primary-key order, in
chunks, and each chunk of source rows is compared with the target's rows of the
same key range; missing or different rows are upserted, and target rows the source
no longer has are deleted. That one walk gives what a move needs:

* **Resumable.** Every chunk commits on its own. A run that is interrupted (or
  killed) leaves whole chunks behind, and the next run rewrites only the chunks
  that still differ.
* **Live source.** The source is read in one snapshot (a read transaction on
  SQLite's WAL, ``REPEATABLE READ`` on PostgreSQL), so the copy is consistent even
  while workers write: foreign keys hold, and story counters agree with the
  articles. Writes that land after the snapshot are picked up by the next run,
  which is quick once the workers are stopped (the move procedure in
  docs/operations.md).
* **Verified.** After the walk, both databases are read again and every table's
  row count and SHA-256 over its rows (canonical values in key order, so SQLite's
  and PostgreSQL's representations of a timestamp or a JSON object compare equal)
  are reported side by side.

It writes only to the *target* database, table by table through the same
SQLModel tables the schema is made of; the live database's tables keep their one
writer each (:mod:`worker.store`). The target must be empty or hold an earlier
copy of the same source (its ``copy_runs`` table says which): a copy never
overwrites someone else's data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from .. import models  # noqa: F401  (registers every table on SQLModel.metadata)
from ..models import Change, ChangeLogState, CopyRun, utcnow
from .sql import table_of

DEFAULT_CHUNK_ROWS = 1_000

Key = tuple[Any, ...]


class CopyError(Exception):
    """The copy cannot go on; the message says why and what to do."""


@dataclass
class TableReport:
    """What the copy did to one table, and whether the two sides now agree."""

    table: str
    source_rows: int = 0
    target_rows: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    source_sha256: str = ""
    target_sha256: str = ""

    @property
    def identical(self) -> bool:
        return (self.source_rows, self.source_sha256) == (self.target_rows, self.target_sha256)


@dataclass
class CopyReport:
    tables: list[TableReport] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)
    """For each PostgreSQL sequence moved on: the next id it will hand out."""

    @property
    def identical(self) -> bool:
        return all(table.identical for table in self.tables)


Progress = Callable[[str, int], None]
"""Called with a table's name and how many of its source rows have been walked."""


def copyable_tables() -> list[sa.Table]:
    """The schema's tables, parents before children (foreign keys hold chunk by chunk),
    and the change log last: the target's triggers log every row the copy writes into
    articles, stories and feeds, and syncing the log after them replaces those entries
    with the source's log (positions and all, so a consumer reads on where it was).
    Not ``copy_runs``, which belongs to the database it is in."""
    runs = table_of(CopyRun)
    last = [table_of(Change), table_of(ChangeLogState)]
    tables = [t for t in SQLModel.metadata.sorted_tables if t is not runs and t not in last]
    return [*tables, *last]


def copy_database(
    source: Engine,
    target: Engine,
    *,
    source_label: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> CopyReport:
    """Make ``target`` hold exactly what ``source`` holds; both must be migrated to
    the same revision (the caller checks: :func:`worker.database_ops.copy_database`).

    ``source_label`` names the source in the target's ``copy_runs`` (its URL without
    the password): a target that holds rows is written only if an earlier run from
    the same source wrote it."""
    if chunk_rows < 1:
        raise CopyError("chunk_rows must be at least 1")
    report = CopyReport()
    tables = copyable_tables()
    run_id = _begin_run(target, tables, source_label)
    with _snapshot(source) as reader:
        # Both schemas are read once, before anything is written.
        shared = {table.name: _shared_columns(table, reader, target) for table in tables}
        for table in tables:
            table_report = TableReport(table=table.name)
            _sync_table(
                reader, target, table, shared[table.name], chunk_rows, table_report, progress
            )
            report.tables.append(table_report)
        report.sequences = _move_sequences(target, tables)
        for table, table_report in zip(tables, report.tables, strict=True):
            columns = shared[table.name]
            table_report.source_rows, table_report.source_sha256 = _digest(reader, table, columns)
            with target.connect() as conn:
                table_report.target_rows, table_report.target_sha256 = _digest(conn, table, columns)
    _finish_run(target, run_id, report)
    return report


# --- the target's record of the runs that wrote it ------------------------------------


def _begin_run(target: Engine, tables: list[sa.Table], source_label: str) -> int:
    """Refuse a target that holds rows no copy of this source wrote; record the run."""
    runs = table_of(CopyRun)
    with target.begin() as conn:
        earlier = conn.execute(
            sa.select(runs.c.source).order_by(runs.c.id.desc()).limit(1)
        ).scalar()
        log = {table_of(Change), table_of(ChangeLogState)}  # kept by triggers/migrations
        holding = [
            table.name
            for table in tables
            if table not in log
            and conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
        ]
        if holding and earlier != source_label:
            written_by = f"a copy of {earlier}" if earlier else "no copy"
            raise CopyError(
                f"the target already holds rows (table {holding[0]}, ...) written by "
                f"{written_by}; copy into an empty database or one an earlier copy of "
                "this source wrote"
            )
        run_id = conn.execute(
            sa.insert(runs).values(source=source_label, started_at=utcnow(), report={})
        ).inserted_primary_key
        assert run_id is not None
        return int(run_id[0])


def _finish_run(target: Engine, run_id: int, report: CopyReport) -> None:
    runs = table_of(CopyRun)
    summary = {
        "sequences": report.sequences,
        "tables": {t.table: {**asdict(t), "identical": t.identical} for t in report.tables},
    }
    with target.begin() as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(finished_at=utcnow(), identical=report.identical, report=summary)
        )


# --- reading the source in one snapshot ------------------------------------------------


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose every read sees the same committed state."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # pysqlite opens no transaction for SELECTs; an explicit one pins the
            # WAL snapshot at the first read (writers go on; the WAL grows meanwhile).
            conn.exec_driver_sql("BEGIN")
        elif engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            yield conn
        finally:
            conn.rollback()


def _shared_columns(table: sa.Table, reader: Connection, target: Engine) -> list[sa.Column[Any]]:
    """The table's columns that both databases store (not computed ones, which the
    target derives itself); a column only one side has means the schemas differ."""
    present = [
        {c["name"] for c in sa.inspect(bind).get_columns(table.name)} for bind in (reader, target)
    ]
    columns = [c for c in table.columns if c.computed is None]
    missing = [c.name for c in columns if not all(c.name in side for side in present)]
    if missing:
        raise CopyError(
            f"table {table.name}: column(s) {', '.join(missing)} missing on one side; "
            "upgrade both databases to the same revision (ingest db upgrade)"
        )
    return columns


# --- walking a table ----------------------------------------------------------------


def _ordering(table: sa.Table, dialect: str) -> list[Any]:
    """The primary key in byte order on both databases (PostgreSQL's default
    collation orders text by locale rules; SQLite and ``"C"`` order by code point)."""
    keys: list[Any] = []
    for column in table.primary_key.columns:
        if dialect == "postgresql" and isinstance(column.type, sa.String):
            keys.append(column.collate("C"))
        else:
            keys.append(column)
    return keys


def _after(keys: list[Any], key: Key) -> Any:
    return keys[0] > key[0] if len(keys) == 1 else sa.tuple_(*keys) > sa.tuple_(*key)


def _up_to(keys: list[Any], key: Key) -> Any:
    return keys[0] <= key[0] if len(keys) == 1 else sa.tuple_(*keys) <= sa.tuple_(*key)


def _rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    *,
    after: Key | None,
    up_to: Key | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    keys = _ordering(table, conn.dialect.name)
    query = sa.select(*columns).order_by(*keys)
    if after is not None:
        query = query.where(_after(keys, after))
    if up_to is not None:
        query = query.where(_up_to(keys, up_to))
    if limit is not None:
        query = query.limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]


def _key(table: sa.Table, row: dict[str, Any]) -> Key:
    return tuple(row[c.name] for c in table.primary_key.columns)


def _self_references(table: sa.Table) -> list[str]:
    """Columns that point at the same table (``articles.duplicate_of_id``): a row may
    name one the walk has not reached yet, so that value is set after the walk."""
    return [
        fk.parent.name for fk in table.foreign_keys if fk.column.table is table and fk.parent.name
    ]


def _sync_table(
    reader: Connection,
    target: Engine,
    table: sa.Table,
    columns: list[sa.Column[Any]],
    chunk_rows: int,
    report: TableReport,
    progress: Progress | None,
) -> None:
    deferred: list[tuple[Key, str, Any]] = []
    self_refs = _self_references(table)
    after: Key | None = None
    walked = 0
    while True:
        chunk = _rows(reader, table, columns, after=after, limit=chunk_rows)
        with target.begin() as conn:
            if not chunk:
                # Everything beyond the source's last key is gone from the source.
                report.deleted += _delete_keys(
                    conn, table, [_key(table, r) for r in _rows(conn, table, columns, after=after)]
                )
                break
            last = _key(table, chunk[-1])
            theirs = {
                _key(table, row): row
                for row in _rows(conn, table, columns, after=after, up_to=last)
            }
            ours = {_key(table, row): row for row in chunk}
            report.deleted += _delete_keys(conn, table, [k for k in theirs if k not in ours])
            changed: list[dict[str, Any]] = []
            for key, row in ours.items():
                held = theirs.get(key)
                if held is not None and _canon(held) == _canon(row):
                    report.unchanged += 1
                    continue
                if held is not None:
                    report.updated += 1
                else:
                    report.inserted += 1
                for name in self_refs:
                    pointed = row[name]
                    if pointed is not None and (pointed,) > last:
                        deferred.append((key, name, pointed))
                        row = {**row, name: None}
                changed.append(row)
            _upsert(conn, table, changed, first=after, last=last)
        walked += len(chunk)
        if progress is not None:
            progress(table.name, walked)
        after = last
    if deferred:
        with target.begin() as conn:
            for key, name, pointed in deferred:
                conn.execute(sa.update(table).where(_matches(table, key)).values({name: pointed}))


def _matches(table: sa.Table, key: Key) -> Any:
    return sa.and_(*(c == v for c, v in zip(table.primary_key.columns, key, strict=True)))


def _delete_keys(conn: Connection, table: sa.Table, keys: list[Key]) -> int:
    for key in keys:
        conn.execute(sa.delete(table).where(_matches(table, key)))
    return len(keys)


def _upsert(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    first: Key | None,
    last: Key,
) -> None:
    """Insert ``rows``, or overwrite the target's rows of the same keys, in one batch."""
    if not rows:
        return
    insert: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
    pk = [c.name for c in table.primary_key.columns]
    rest = {name: insert.excluded[name] for name in rows[0] if name not in pk}
    statement = (
        insert.on_conflict_do_update(index_elements=pk, set_=rest)
        if rest
        else insert.on_conflict_do_nothing(index_elements=pk)
    )
    try:
        conn.execute(statement, rows)  # executemany: pipelined by psycopg
    except (sa.exc.DBAPIError, ValueError) as exc:
        # A unique value held by another row (the target was not empty), or a value
        # the target cannot store (PostgreSQL text holds no NUL character).
        detail = getattr(exc, "orig", None) or exc
        raise CopyError(
            f"table {table.name}, keys after {first} up to {last}: the target refused the "
            f"rows ({detail}). Copy into an empty database or one an earlier copy of "
            "this source wrote."
        ) from exc


# --- sequences and verification -----------------------------------------------------


def _move_sequences(target: Engine, tables: list[sa.Table]) -> dict[str, int]:
    """Set each PostgreSQL id sequence past the highest copied id, so the next
    insert does not collide with a copied row (explicit ids do not move them)."""
    if target.dialect.name != "postgresql":
        return {}
    moved: dict[str, int] = {}
    with target.begin() as conn:
        for table in tables:
            (pk, *more) = table.primary_key.columns
            if more or not isinstance(pk.type, sa.Integer):
                continue
            sequence = conn.execute(
                sa.select(sa.func.pg_get_serial_sequence(table.name, pk.name))
            ).scalar()
            if sequence is None:
                continue
            highest = conn.execute(sa.select(sa.func.max(pk))).scalar() or 0
            conn.execute(
                sa.text("SELECT setval(CAST(:sequence AS regclass), :next, false)"),
                {"sequence": sequence, "next": highest + 1},
            )
            moved[table.name] = highest + 1
    return moved


def _canon(row: dict[str, Any] | None) -> str | None:
    """One text for a row, equal on both databases for equal values."""
    if row is None:
        return None
    return json.dumps(
        [_canon_value(value) for value in row.values()], ensure_ascii=False, default=str
    )


def _canon_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def _digest(conn: Connection, table: sa.Table, columns: list[sa.Column[Any]]) -> tuple[int, str]:
    """Row count and SHA-256 of a table's rows in key order."""
    digest = hashlib.sha256()
    count = 0
    after: Key | None = None
    while True:
        rows = _rows(conn, table, columns, after=after, limit=DEFAULT_CHUNK_ROWS * 5)
        if not rows:
            return count, digest.hexdigest()
        for row in rows:
            digest.update((_canon(row) or "").encode())
            digest.update(b"\n")
        count += len(rows)
        after = _key(table, rows[-1])
