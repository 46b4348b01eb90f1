"""A consistent backup of a live database (``ingest db backup PATH``).

SQLite: the online backup API copies the whole file in one step, which reads one
snapshot. In WAL mode that read blocks no writer, so workers go on storing while it
runs. A file copy (``cp``) would not be safe: it can take the main file and its
``-wal`` at different moments. The copy is written next to ``PATH``, checked with
``PRAGMA integrity_check`` and ``foreign_key_check``, and only then renamed into
place, so a backup that exists is whole.

PostgreSQL: ``pg_dump --format=custom``, which reads one snapshot too (a
``REPEATABLE READ`` transaction) while the workers write; restore it with
``pg_restore`` (docs/operations.md, "Backups"). The server's own tools are the right
ones there; this only runs them with the service's URL, so an operator has one
command for either database.

Restoring (``ingest db restore PATH``, :func:`restore_database`) is the reverse, with
the two traps of doing it by hand taken out. SQLite: the old database's ``-wal`` must
not survive next to the restored file, or SQLite would replay the old database's
pages onto it; the copy is made and checked beside the target, the old log removed,
and the copy renamed into place. PostgreSQL: ``pg_restore`` into an *empty* database,
in one transaction, stopping at the first error, so a restore either happened whole or
left nothing behind; without owners and grants, which name roles a fresh cluster may
not have. What the service must do next (migrate, release the old deployment's leases)
is :func:`worker.database_ops.restore_database`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


class BackupError(Exception):
    """The backup could not be taken or failed its check; nothing was left at PATH."""


@dataclass(frozen=True)
class Backup:
    path: Path
    database: str  # sqlite | postgresql
    bytes: int
    articles: int | None
    """Articles in the backup (SQLite; a pg_dump archive is not opened to count)."""


def backup_database(url: str, path: Path, *, overwrite: bool = False) -> Backup:
    """Write a consistent backup of the database at ``url`` to ``path``."""
    parsed = sa.make_url(url)
    if path.exists() and not overwrite:
        raise BackupError(f"{path} exists; give another path (or --force to replace it)")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent} is not a directory")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise BackupError("an in-memory SQLite database has no file to back up")
        return _sqlite(Path(parsed.database or ""), path)
    if backend == "postgresql":
        return _postgres(parsed, path)
    raise BackupError(f"cannot back up a {backend} database")


def _sqlite(source: Path, path: Path) -> Backup:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        # The source connection only reads: one read transaction for the one step.
        with (
            closing(sqlite3.connect(source, timeout=30)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)  # pages=-1: one step, one snapshot
        articles = _check_sqlite(partial, what="the backup")
        os.replace(partial, path)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=path, database="sqlite", bytes=path.stat().st_size, articles=articles)


def _check_sqlite(path: Path, *, what: str) -> int:
    """Refuse a SQLite file that is damaged or has orphan rows; its article count."""
    with closing(sqlite3.connect(path)) as check:
        problems = [row[0] for row in check.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError(f"{what} failed its integrity check: {problems[:3]}")
        orphans = check.execute("PRAGMA foreign_key_check").fetchall()
        if orphans:
            raise BackupError(f"{what} has rows without their parent: {orphans[:3]}")
        (articles,) = check.execute("SELECT count(*) FROM articles").fetchone()
    return int(articles)


def _libpq(url: sa.URL) -> tuple[str, dict[str, str]]:
    """The URL as libpq takes it (no SQLAlchemy driver name, no password) and the
    environment that carries the password, so it never shows in the process list."""
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    libpq = url.set(drivername="postgresql", password=None)
    return libpq.render_as_string(hide_password=False), env


def _postgres(url: sa.URL, path: Path) -> Backup:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    partial = path.with_name(path.name + ".partial")
    libpq, env = _libpq(url)
    done = subprocess.run(
        [pg_dump, "--format=custom", "--file", str(partial), libpq],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
    os.replace(partial, path)
    return Backup(path=path, database="postgresql", bytes=path.stat().st_size, articles=None)


SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"  # pg_dump --format=custom
LOG_SUFFIXES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database: they belong to the file they were written
for, and replayed onto another would damage it."""


@dataclass(frozen=True)
class Restored:
    path: Path
    """The backup that was restored."""
    database: str  # sqlite | postgresql
    replaced: bool
    """An existing SQLite database was replaced (``--force``)."""


def backup_kind(path: Path) -> str:
    """``sqlite`` or ``postgresql``: which of our backups ``path`` is, by its first bytes."""
    with path.open("rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(
        f"{path} is neither a SQLite database nor a pg_dump archive (--format=custom), "
        "the two kinds `ingest db backup` writes"
    )


def restore_database(url: str, path: Path, *, replace: bool = False) -> Restored:
    """Put the backup at ``path`` into the database at ``url``.

    SQLite: ``url``'s file must not exist unless ``replace``. PostgreSQL: the database
    must exist and be empty (``createdb``). The workers must be stopped: they would go
    on writing to what is being replaced.
    """
    if not path.is_file():
        raise BackupError(f"no backup at {path}")
    kind = backup_kind(path)
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot restore into a {backend} database")
    if kind != backend:
        raise BackupError(
            f"{path} is a {kind} backup and the database is {backend}: restore it into a "
            f"{kind} database, then move it with `ingest db copy --to`"
        )
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise BackupError("an in-memory SQLite database cannot be restored into")
        return _restore_sqlite(path, Path(parsed.database or ""), replace=replace)
    _restore_postgres(path, parsed)
    return Restored(path=path, database="postgresql", replaced=False)


def _restore_sqlite(backup: Path, target: Path, *, replace: bool) -> Restored:
    if backup.resolve() == target.resolve():
        raise BackupError(f"{backup} is the database itself; it is already in place")
    existed = target.exists()
    if existed and not replace:
        raise BackupError(
            f"{target} exists; stop the workers and give --force to replace it with the backup"
        )
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    partial = target.with_name(target.name + ".restoring")
    partial.unlink(missing_ok=True)
    try:
        # Read-only: a restore must never write to the backup it reads.
        with (
            closing(sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)
        _check_sqlite(partial, what="the backup")
        # The old database's log first: if we stop between the two steps, the old file
        # is left without its log (it was being replaced anyway), never the restored
        # file with a log that is not its own.
        for suffix in LOG_SUFFIXES:
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite restore failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Restored(path=backup, database="sqlite", replaced=existed)


def _restore_postgres(backup: Path, url: sa.URL) -> None:
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        raise BackupError("pg_restore is not installed (Debian: apt-get install postgresql-client)")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
    except sa.exc.OperationalError as exc:
        raise BackupError(f"cannot connect to the database to restore into: {exc.orig}") from None
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the database {url.database} already has {len(tables)} tables; restore into an "
            "empty database (createdb, or dropdb and createdb)"
        )
    libpq, env = _libpq(url)
    done = subprocess.run(
        [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error",
         "--single-transaction", "--dbname", libpq, str(backup)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed (nothing was restored): {done.stderr.strip()[-500:]}")
