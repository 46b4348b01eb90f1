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
        with closing(sqlite3.connect(partial)) as check:
            problems = [row[0] for row in check.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(f"the backup failed its integrity check: {problems[:3]}")
            orphans = check.execute("PRAGMA foreign_key_check").fetchall()
            if orphans:
                raise BackupError(f"the backup has rows without their parent: {orphans[:3]}")
            (articles,) = check.execute("SELECT count(*) FROM articles").fetchone()
        os.replace(partial, path)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=path, database="sqlite", bytes=path.stat().st_size, articles=articles)


def _postgres(url: sa.URL, path: Path) -> Backup:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    partial = path.with_name(path.name + ".partial")
    # libpq takes the URL without SQLAlchemy's driver name; the password goes through
    # the environment so that it never shows in the process list.
    libpq = url.set(drivername="postgresql", password=None)
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    done = subprocess.run(
        [pg_dump, "--format=custom", "--file", str(partial),
         libpq.render_as_string(hide_password=False)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
    os.replace(partial, path)
    return Backup(path=path, database="postgresql", bytes=path.stat().st_size, articles=None)
