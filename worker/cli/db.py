"""``ingest db``: the schema (``upgrade``, which the migrate container runs before
anything else), a backup of the live database (``backup``), putting one back
(``restore``) and moving the data to another database (``copy``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import EXIT_FAILED, JsonOpt, console, emit_json, err_console, fail


def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply Alembic migrations up to REVISION (default: head)."""
    from .. import migrate

    migrate.upgrade(revision=revision)
    console.print(f"database at revision {revision}")


def db_copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Target database URL, e.g. postgresql+psycopg://ingest:PASSWORD@db/ingest. "
            "Migrated first; must be empty or hold an earlier copy of the same source.",
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option("--from", help="Source database URL (default: INGEST_DATABASE_URL)."),
    ] = None,
    chunk: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per chunk.")] = 1_000,
    as_json: JsonOpt = False,
) -> None:
    """Copy every table into another database and verify it (counts and SHA-256).

    Safe to interrupt and run again: it rewrites only what differs. Run it once with
    the workers up, stop them, run it again, then point INGEST_DATABASE_URL at the target.
    """
    from .. import database_ops

    def progress(table: str, rows: int) -> None:
        if not as_json:
            err_console.print(f"  {table}: {rows} rows walked", highlight=False)

    report = database_ops.copy_database(to, source_url=source, chunk_rows=chunk, progress=progress)
    if as_json:
        emit_json(
            {
                "identical": report.identical,
                "sequences": report.sequences,
                "tables": [
                    {**dataclasses.asdict(t), "identical": t.identical} for t in report.tables
                ],
            }
        )
    else:
        table = Table("table", "rows", "inserted", "updated", "deleted", "sha256", "same")
        for t in report.tables:
            table.add_row(
                t.table,
                f"{t.source_rows} / {t.target_rows}",
                str(t.inserted),
                str(t.updated),
                str(t.deleted),
                t.source_sha256[:12],
                "yes" if t.identical else "NO",
            )
        console.print(table)
    if not report.identical:
        fail(
            "the target differs from the source (was it written meanwhile?); run again",
            code=EXIT_FAILED,
        )
    if not as_json:
        console.print("target identical to source: every table's count and SHA-256 agree")


def db_backup(
    path: Annotated[Path, typer.Argument(help="File to write (SQLite file or pg_dump archive).")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Back up the live database to PATH, safely while workers write.

    SQLite: the online backup API (one consistent snapshot, checked before it is kept).
    PostgreSQL: pg_dump --format=custom (restore with pg_restore).
    """
    from .. import database_ops

    taken = database_ops.backup_database(path, overwrite=force)
    if as_json:
        emit_json({**dataclasses.asdict(taken), "path": str(taken.path)})
        return
    what = f", {taken.articles} articles" if taken.articles is not None else ""
    console.print(f"backup of the {taken.database} database written to {taken.path} "
                  f"({taken.bytes} bytes{what})")  # fmt: skip


def db_restore(
    path: Annotated[
        Path, typer.Argument(help="A backup `ingest db backup` wrote (SQLite file or pg_dump).")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing SQLite database file.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into INGEST_DATABASE_URL, migrate it, and make it ready to resume.

    Stop the workers and beat first. SQLite: the file is replaced only with --force.
    PostgreSQL: the database must exist and be empty (createdb). Then start the workers
    and beat on an empty queue (docs/operations.md, "Restore drill").
    """
    from .. import database_ops

    done = database_ops.restore_database(path, replace=force)
    if as_json:
        emit_json({**dataclasses.asdict(done), "path": str(done.path)})
        return
    console.print(
        f"restored the {done.database} backup {done.path} ({done.articles} articles); "
        f"schema at revision {done.revision}",
        highlight=False,
    )
    console.print(
        f"  {done.entries_pending} entries pending: beat sends them again once they have been "
        "pending INGEST_STALE_PENDING_SECONDS",
        highlight=False,
    )
    console.print(f"  {done.feeds_due} feeds due now (the old deployment's claims and leases "
                  "released)", highlight=False)  # fmt: skip
    console.print(
        f"  change log at position {done.change_log_head}: change-feed followers and webhook "
        'consumers must resync (docs/operations.md, "Restore drill")',
        highlight=False,
    )
    if done.queued_crawl_requests:
        ids = ", ".join(str(i) for i in done.queued_crawl_requests)
        console.print(
            f"  re-crawl requests {ids} were queued and never started: beat sends them again "
            "once they are INGEST_STALE_PENDING_SECONDS old",
            highlight=False,
        )
