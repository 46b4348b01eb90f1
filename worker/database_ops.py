"""The database's own operations, for the command line only: a consistent backup of
the live database (``ingest db backup``), putting one back (``ingest db restore``) and
a verified copy into another database (``ingest db copy``, how a deployment moves
from SQLite to PostgreSQL).

Apart from :mod:`worker.operations` because the API has no door for them (they read
or write whole databases, not rows), and they raise its :class:`BadInputError` so
the CLI turns a refusal into exit 2 the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import backup, store
from .operations import BadInputError


def copy_database(
    target_url: str,
    *,
    source_url: str | None = None,
    chunk_rows: int = store.copy.DEFAULT_CHUNK_ROWS,
    progress: store.copy.Progress | None = None,
) -> store.copy.CopyReport:
    """Copy the database (``INGEST_DATABASE_URL`` unless ``source_url``) into
    ``target_url``, migrating the target first (``ingest db copy``; the move from
    SQLite to PostgreSQL in docs/operations.md). Safe to repeat: see
    :mod:`worker.store.copy`."""
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    from . import migrate
    from .db import make_engine
    from .settings import get_settings

    source_url = source_url or get_settings().database_url
    try:
        source_name, target_name = sa.make_url(source_url), sa.make_url(target_url)
    except sa.exc.ArgumentError as exc:
        raise BadInputError(f"not a database URL: {exc}") from None
    if source_name == target_name:
        raise BadInputError("the target is the source database; give another --to")
    if target_name.get_backend_name() not in ("postgresql", "sqlite"):
        raise BadInputError(f"--to must be a PostgreSQL or SQLite URL: {target_name.drivername}")
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        (head,) = migrate.current_heads(source_url)
        with source.connect() as conn:
            at = MigrationContext.configure(conn).get_current_revision()
        if at != head:
            raise BadInputError(
                f"the source database is at revision {at}, this version of ingest at {head}: "
                "run `ingest db upgrade` on it first"
            )
        migrate.upgrade(target_url)
        try:
            return store.copy.copy_database(
                source,
                target,
                source_label=_database_label(source_url),
                chunk_rows=chunk_rows,
                progress=progress,
            )
        except store.copy.CopyError as exc:
            raise BadInputError(str(exc)) from None
    finally:
        source.dispose()
        target.dispose()


def _database_label(url: str) -> str:
    """A database's URL as the copy records it: no password, and a SQLite file by its
    absolute path (so a run from another directory is recognised as the same source)."""
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=True)


def backup_database(path: Path, *, overwrite: bool = False) -> backup.Backup:
    """A consistent backup of the live database (``INGEST_DATABASE_URL``) at ``path``
    (``ingest db backup``; :mod:`worker.backup`)."""
    from .settings import get_settings

    try:
        return backup.backup_database(get_settings().database_url, path, overwrite=overwrite)
    except backup.BackupError as exc:
        raise BadInputError(str(exc)) from None


@dataclass(frozen=True)
class RestoreReport:
    """What ``ingest db restore`` did, and what the operator is left to do."""

    path: Path
    database: str  # sqlite | postgresql
    replaced: bool
    revision: str
    articles: int
    entries_pending: int
    """Left pending by the old deployment: beat sends them again once they have been
    pending ``INGEST_STALE_PENDING_SECONDS``."""
    feeds_due: int
    subscription_leases_released: int
    change_log_head: int
    """Followers of the change feed and webhook consumers resync from here."""
    queued_crawl_requests: list[int]
    """Re-crawls recorded but never started: their message is gone with the old queue, so
    beat's sweep sends them again (``tasks.poll_due_feeds``)."""


def restore_database(path: Path, *, url: str | None = None, replace: bool = False) -> RestoreReport:
    """Restore the backup at ``path`` into the database (``INGEST_DATABASE_URL`` unless
    ``url``), migrate it, and release what the old deployment held (``ingest db
    restore``; the drill in docs/operations.md).

    Releasing matters for resuming at once: the feeds claimed or leased when the backup
    was taken, and the webhook deliveries under way, were held by tasks that no longer
    exist. Pending entries need nothing here: beat's pending-entry sweep sends them again.
    """
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    from . import migrate
    from .db import make_engine, session_scope
    from .models import utcnow
    from .settings import get_settings

    url = url or get_settings().database_url
    try:
        restored = backup.restore_database(url, path, replace=replace)
    except (backup.BackupError, sa.exc.ArgumentError) as exc:
        raise BadInputError(str(exc)) from None
    try:
        migrate.upgrade(url)
    except CommandError as exc:  # a revision this version does not know: a newer release
        raise BadInputError(
            f"the backup was restored but cannot be migrated ({exc}); was it taken by a "
            "newer release of ingest? Run that release's `ingest db upgrade`"
        ) from None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision() or ""
    finally:
        engine.dispose()
    with session_scope(url) as session:
        feeds_due = store.release_feeds_after_restore(session, now=utcnow())
        leases = store.release_subscription_leases(session)
        counts = store.totals(session)
        _, head = store.change_log_bounds(session)
        queued = store.queued_crawl_request_ids(session)
    return RestoreReport(
        path=path,
        database=restored.database,
        replaced=restored.replaced,
        revision=revision,
        articles=int(counts["articles"]),
        entries_pending=int(counts["entries"].get("pending", 0)),
        feeds_due=feeds_due,
        subscription_leases_released=leases,
        change_log_head=head,
        queued_crawl_requests=queued,
    )
