"""``ingest db backup``: consistent backups of a database that workers keep writing.

A writer thread stores articles through the store path (dedup, stories, bands, one
transaction each, as the pipeline does) for the whole test. Each backup taken
meanwhile must be a database in its own right: whole (integrity check), every story's
counter equal to a recount of its articles, every band key and entry pointing at an
article that exists, at the current schema revision; and it must hold at least what
was stored before it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.db_copy import article_record, build_source, texts
from tests.support import services
from tests.support.factories import BODY
from worker import database_ops, migrate, operations, store
from worker.backup import backup_database
from worker.db import dispose_engines, make_engine, session_scope

pytestmark = pytest.mark.integration


class Writer(threading.Thread):
    """Stores articles into ``url`` until stopped, as a worker would."""

    def __init__(self, url: str, pool: list[tuple[str, str, str]]) -> None:
        super().__init__(daemon=True)
        self.url, self.pool = url, pool
        self.stop = threading.Event()
        self.stored = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            i = 10_000
            while not self.stop.is_set():
                with session_scope(self.url) as session:
                    store.save_article(session, article_record(i, self.pool[i % len(self.pool)], 1))
                self.stored += 1
                i += 1
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def articles_in(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())
    finally:
        engine.dispose()


def assert_consistent(url: str) -> int:
    """The invariants a half-copied database would break; its article count."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            miscounted = conn.execute(sa.text(
                "SELECT s.id FROM stories s LEFT JOIN articles a ON a.story_id = s.id "
                "GROUP BY s.id, s.article_count HAVING count(a.id) <> s.article_count"
            )).all()  # fmt: skip
            assert miscounted == []
            orphans = conn.execute(sa.text(
                "SELECT count(*) FROM article_bands b LEFT JOIN articles a ON a.id = b.article_id"
                " WHERE a.id IS NULL"
            )).scalar_one()  # fmt: skip
            assert orphans == 0
            lost = conn.execute(sa.text(
                "SELECT count(*) FROM entries e LEFT JOIN articles a ON a.id = e.article_id"
                " WHERE e.article_id IS NOT NULL AND a.id IS NULL"
            )).scalar_one()  # fmt: skip
            assert lost == 0
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert [revision] == migrate.current_heads(url)
    finally:
        engine.dispose()
    return articles_in(url)


@pytest.fixture
def live_sqlite(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Writer]]:
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    url = f"sqlite:///{tmp_path / 'live.db'}"
    pool = texts(shared_data)
    build_source(url, pool, 150)
    monkeypatch.setenv("INGEST_DATABASE_URL", url)
    reset_settings()
    writer = Writer(url, pool)
    writer.start()
    yield url, writer
    writer.stop.set()
    writer.join(timeout=30)
    assert writer.error is None, writer.error
    dispose_engines()


def test_sqlite_backups_taken_while_a_worker_writes_are_whole(
    live_sqlite: tuple[str, Writer], tmp_path: Path
) -> None:
    url, writer = live_sqlite
    for n in range(3):
        before = articles_in(url)
        backup = database_ops.backup_database(tmp_path / f"backup-{n}.db")
        assert backup.database == "sqlite"
        assert not (tmp_path / f"backup-{n}.db.partial").exists()
        copy_url = f"sqlite:///{backup.path}"
        assert assert_consistent(copy_url) == backup.articles
        assert backup.articles is not None
        assert backup.articles >= before
    assert writer.stored > 0  # the backups really ran beside writes
    assert articles_in(url) >= backup.articles

    with pytest.raises(operations.BadInputError, match="exists"):
        database_ops.backup_database(tmp_path / "backup-0.db")
    assert database_ops.backup_database(tmp_path / "backup-0.db", overwrite=True).articles


def test_cli_backup_and_its_refusals(live_sqlite: tuple[str, Writer], tmp_path: Path) -> None:
    url, _ = live_sqlite
    env = {**os.environ, "INGEST_DATABASE_URL": url}
    target = tmp_path / "cli.db"
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "backup", str(target), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["articles"] == assert_consistent(f"sqlite:///{target}")
    for args, message in (
        ([str(target)], "exists"),
        ([str(tmp_path / "no-such-dir" / "x.db")], "is not a directory"),
    ):
        refused = subprocess.run(
            [sys.executable, "-m", "worker.cli", "db", "backup", *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert refused.returncode == 2
        assert message in " ".join(refused.stderr.split())  # the console wraps long lines


def test_postgres_dump_taken_while_a_worker_writes_restores_whole(
    postgres_server: services.PostgresServer,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_dump of a live database, restored with pg_restore into a fresh database: the
    restore is consistent and at head, and the service writes on in it."""
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    url = postgres_server.create_database("live")
    pool = texts(shared_data)
    build_source(url, pool, 80)
    monkeypatch.setenv("INGEST_DATABASE_URL", url)
    reset_settings()
    writer = Writer(url, pool)
    writer.start()
    try:
        before = articles_in(url)
        backup = database_ops.backup_database(tmp_path / "live.dump")
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None, writer.error
    assert backup.database == "postgresql"
    assert backup.bytes > 0

    restored = postgres_server.create_database("restored")
    libpq = sa.make_url(restored).set(drivername="postgresql").render_as_string(False)
    done = subprocess.run(
        ["pg_restore", "--no-owner", "--dbname", libpq, str(backup.path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert assert_consistent(restored) >= before
    # Sequences came with the dump: the store path writes on in the restored database.
    with session_scope(restored) as session:
        text = ("Restored and writing", "A story no article told before. " * 30, "en")
        outcome = store.save_article(session, article_record(99_999, text, 1))
    assert outcome.action == "created"
    dispose_engines()


def small_pool() -> list[tuple[str, str, str]]:
    """A few texts for the restore tests (loading the labelled sets costs seconds)."""
    words = BODY.split()
    return [
        (f"Report {n}", " ".join(words[n * 7 :] + words[: n * 7]) + f" Report {n}.", "en")
        for n in range(8)
    ]


def _crash_after_writing(path: Path) -> None:
    """Re-title every article in another process that dies without closing its
    connection, so the commit stays in the database's ``-wal`` (nothing folds it in)."""
    script = (
        "import os, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1])\n"
        "conn.execute('PRAGMA wal_autocheckpoint=0')\n"
        "conn.execute(\"UPDATE articles SET title = 'written after the backup'\")\n"
        "conn.commit()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)


def test_sqlite_restore_replaces_a_database_and_its_log(tmp_path: Path) -> None:
    """``ingest db restore --force`` over a database whose ``-wal`` still holds commits:
    the result is the backup, whole, and the old log was not replayed onto it. Feed
    claims and leases the backup holds are released, so polling resumes at once."""
    from datetime import timedelta

    from worker.models import Article, Feed, utcnow

    url = f"sqlite:///{tmp_path / 'live.db'}"
    build_source(url, small_pool(), 20)
    with session_scope(url) as session:  # a poll in flight when the backup is taken
        session.execute(sa.update(Feed).values(
            lease_owner="task-of-the-old-deployment",
            lease_until=utcnow() + timedelta(minutes=5),
            next_poll_at=utcnow() + timedelta(minutes=5),
        ))  # fmt: skip
    backup = tmp_path / "backup.db"
    assert backup_database(url, backup).articles == 20
    _crash_after_writing(tmp_path / "live.db")
    wal = tmp_path / "live.db-wal"
    assert wal.stat().st_size > 0  # the old database's last commits live only there

    env = {**os.environ, "INGEST_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "restore", str(backup), "--force", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["replaced"] is True
    assert report["articles"] == 20
    assert report["feeds_due"] == 3
    assert report["revision"] == migrate.current_heads(url)[0]
    assert assert_consistent(url) == 20
    dispose_engines()  # this process's pool still holds the replaced file open
    with session_scope(url) as session:
        feeds = session.exec(sa.select(Feed.lease_owner, Feed.next_poll_at)).all()
        titles = set(session.exec(sa.select(Article.title)).scalars())
    now = utcnow()
    assert all(owner is None and due is not None and due <= now for owner, due in feeds)
    assert "written after the backup" not in titles


def test_restore_refuses_what_it_cannot_restore(
    postgres_server: services.PostgresServer, tmp_path: Path
) -> None:
    """Each refusal says why and leaves the target as it was (exit 2 from the CLI)."""
    sqlite_backup = tmp_path / "backup.db"
    source = f"sqlite:///{tmp_path / 'source.db'}"
    build_source(source, small_pool(), 5)
    backup_database(source, sqlite_backup)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    busy = postgres_server.create_database("busy")
    migrate.upgrade(busy)
    empty = postgres_server.create_database("empty")
    for path, url, message in (
        (tmp_path / "missing.db", f"sqlite:///{tmp_path / 'new.db'}", "no backup at"),
        (junk, f"sqlite:///{tmp_path / 'new.db'}", "neither a SQLite database"),
        (sqlite_backup, empty, "is a sqlite backup and the database is postgresql"),
        (sqlite_backup, source, "exists; stop the workers"),
        (sqlite_backup, f"sqlite:///{sqlite_backup}", "is the database itself"),
    ):
        with pytest.raises(operations.BadInputError, match=message):
            database_ops.restore_database(path, url=url)
    assert not (tmp_path / "new.db").exists()
    dump = tmp_path / "busy.dump"
    backup_database(busy, dump)
    with pytest.raises(operations.BadInputError, match="already has"):
        database_ops.restore_database(dump, url=busy)
    assert articles_in(source) == 5


def test_release_after_restore_frees_what_the_old_deployment_held(database_url: str) -> None:
    """Every enabled feed due now and no lease left, on both databases; a disabled feed
    stays as it was; webhook delivery leases are freed."""
    from datetime import timedelta

    from tests.support.factories import add_feed
    from worker.models import Feed, Subscription, utcnow

    now = utcnow()
    later = now + timedelta(minutes=5)
    held = add_feed(name="held")  # claimed and leased by a poll of the old deployment
    idle = add_feed(name="idle")
    off = add_feed(name="off", enabled=False)
    with session_scope() as session:
        session.execute(sa.update(Feed).where(Feed.id == held).values(
            lease_owner="old-task", lease_until=later, next_poll_at=later))  # fmt: skip
        session.execute(sa.update(Feed).where(Feed.id == off).values(next_poll_at=later))
        store.create_subscription(session, url="http://127.0.0.1:9/hook", label=None,
                                  topics=[], kinds=["article"], secret="s", position=0)  # fmt: skip
        session.execute(sa.update(Subscription).values(lease_owner="old-run", lease_until=later))
    with session_scope() as session:
        assert store.release_feeds_after_restore(session, now=now) == 2
        assert store.release_subscription_leases(session) == 1
    with session_scope() as session:
        feeds = {f.id: f for f in session.exec(sa.select(Feed)).scalars()}
        subscription = session.exec(sa.select(Subscription)).scalars().one()
    for feed_id in (held, idle):
        assert feeds[feed_id].lease_owner is None
        assert feeds[feed_id].lease_until is None
        assert feeds[feed_id].next_poll_at is not None
        assert feeds[feed_id].next_poll_at <= now
    assert feeds[off].next_poll_at == later
    assert subscription.lease_owner is None
    assert subscription.lease_until is None
