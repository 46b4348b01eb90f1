"""The backup and restore drill: back up a database that real workers are writing,
restore it into a fresh database, point new workers at it, and prove they resume
without losing or doubling anything.

Why: a backup nobody has restored is a hope, not a backup. The drill follows the
procedure of docs/operations.md ("Restore drill") step by step, with the real parts:
a real ``redis-server``, real ``ingest worker`` and ``ingest beat`` processes, feeds
polled over HTTP from a local news web (:class:`DrillWeb`: real article pages,
syndicated copies, the same article in two feeds, a dead link), and SQLite or
PostgreSQL:

1. the old deployment polls the feeds and stores articles;
2. while it writes, ``ingest db backup`` takes the backup (the online backup API, or
   ``pg_dump``);
3. the feeds publish more, which only the old database sees (what a restore loses,
   and the feeds still list);
4. the old deployment dies (SIGKILL), with work in flight and queued;
5. ``ingest db restore`` puts the backup into a fresh database (a new SQLite file, or
   an empty database of a second PostgreSQL cluster);
6. the old queue is flushed, or kept (its messages name rows by id, and ids past the
   backup name other rows in the restored database: the drill shows that is harmless);
7. new workers and beat start on the restored database: beat's pending-entry sweep
   (``INGEST_STALE_PENDING_SECONDS``, short here) sends the entries the backup holds as
   pending, and polling finds what the backup missed; the feeds publish once more.

After a drain it checks the invariants: every item the feeds ever listed is an entry,
stored or failed with a reason; none is pending; one article per canonical URL and per
feed+GUID; story counters equal a recount; and, right after the restore, every id
sequence is past its table's largest id (as it was in the source).

    python -m bench.restore_drill       # SQLite (queue flushed), then PostgreSQL (queue kept)
    python -m bench.restore_drill --db postgres --queue flushed
    python -m bench.restore_drill --feeds 2 --first 6 --later 2   # the size the test suite runs

Prints one JSON report per database (entries, stored, failed, lost, duplicated, the
sweep's work, durations). ``tests/integration/test_restore_drill.py`` runs the small size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.newsweb import NewsWeb, Page, article_path, load_pages  # noqa: E402
from tests.integration.helpers import running_celery, wait_until, worker_env  # noqa: E402
from tests.support import services  # noqa: E402
from worker import backup, database_ops, migrate, store  # noqa: E402
from worker.db import dispose_engines, make_engine, session_scope  # noqa: E402

COPY_OFFSET = 1000
"""A syndicated copy of article ``a`` is article ``a + COPY_OFFSET * len(pages)``: the same
page under another URL, with a partner note (:func:`bench.newsweb.page_bytes`)."""


DEAD = "gone.html"
"""The page name of a dead link (NewsWeb answers 404 for it)."""


@dataclass(frozen=True)
class Size:
    """How much the feeds publish: ``first`` new articles per feed before the backup,
    ``later`` after it and again after the restore; each round also lists a syndicated
    copy and another feed's article (and, the first time, a dead link)."""

    feeds: int = 2
    first: int = 6
    later: int = 2
    page_delay: float = 0.1
    """Seconds each article page takes to answer, so the backup finds work in flight."""


SHORT = Size()
DEFAULT = Size(feeds=6, first=20, later=6)


@dataclass
class DrillWeb(NewsWeb):
    """The news web of the drill: feeds that keep every item they ever listed (so a
    poll after the restore sees what the backup missed), article pages that answer
    after ``page_delay``, and the record of every (feed, link) published."""

    page_delay: float = 0.0
    listed: dict[str, list[str]] = field(default_factory=dict)
    """Feed path → its item links, oldest first; the link is the item's GUID."""
    next_article: int = 0

    def feed_path(self, name: str) -> str:
        return f"/feed/{name}.xml"

    def publish_round(self, names: list[str], new: int, *, dead_link: bool = False) -> None:
        """``new`` fresh articles per feed, plus a syndicated copy of the feed's first one,
        the first one of the next feed (the same URL in two feeds) and maybe a dead link."""
        fresh = {name: self._take(new) for name in names}
        links: dict[str, list[str]] = {}
        for k, name in enumerate(names):
            first = fresh[name][0]
            articles = [*fresh[name], first + COPY_OFFSET * len(self.pages)]
            if len(names) > 1:
                articles.append(fresh[names[(k + 1) % len(names)]][0])
            links[name] = [self.base_url + article_path(self.pages, a) for a in articles]
            if dead_link:
                links[name].append(f"{self.base_url}/a/{first}/{DEAD}")  # answers 404
            self.article_limit = max(self.article_limit, max(articles) + 1)
        with self._lock:
            for name in names:
                self.listed.setdefault(self.feed_path(name), []).extend(links[name])

    def published(self) -> set[tuple[str, str]]:
        """Every (feed name, GUID) the feeds have listed."""
        with self._lock:
            return {
                (path.removeprefix("/feed/").removesuffix(".xml"), link)
                for path, links in self.listed.items()
                for link in links
            }

    def _take(self, n: int) -> list[int]:
        taken = list(range(self.next_article, self.next_article + n))
        self.next_article += n
        return taken

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            links = list(self.listed.get(path, ()))
        if links:
            self.count("feed_200")
            self._send(handler, self._rss(path, links), "application/rss+xml; charset=utf-8")
            return
        if path.startswith("/a/") and self.page_delay:
            time.sleep(self.page_delay)
        super()._handle(handler)

    def _rss(self, path: str, links: list[str]) -> bytes:
        # Dated a second apart up to now, so the scheduler sees a feed that publishes
        # often and polls it at its floor (the feed's poll_interval_seconds).
        now = datetime.now(UTC)
        items = []
        for age, link in enumerate(reversed(links)):
            number = int(link.split("/")[-2])
            if link.endswith(DEAD):  # nothing to fall back on: the entry must fail, and say why
                title, summary = f"Withdrawn report {number}", ""
            else:
                page = self.pages[number % len(self.pages)]
                title, summary = page.title, page.summary
            items.append(
                f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
                f'<guid isPermaLink="true">{escape(link)}</guid>'
                f"<pubDate>{format_datetime(now - timedelta(seconds=age), usegmt=True)}</pubDate>"
                f"<description>{escape(summary)}</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(path)}</title><link>{self.base_url}/</link>"
            + "".join(items)
            + "</channel></rss>"
        ).encode()


@dataclass
class Invariants:
    """What the drill checks at the end; every list and count but ``stored``/``failed``
    must be empty or 0."""

    entries: int
    stored: int
    failed: int
    lost: int
    """Items a feed listed that are not an entry of the restored database."""
    unexpected: int
    pending: int
    failed_without_reason: int
    duplicated: int
    """Extra articles: a second one for a canonical URL, for a feed+GUID, or for one link."""
    miscounted_stories: int


@dataclass
class DrillReport:
    database: str
    queue: str  # kept | flushed
    entries: int
    stored: int
    failed: int
    lost: int
    duplicated: int
    pending: int
    unexpected: int
    failed_without_reason: int
    miscounted_stories: int
    sequences_behind: list[str]
    """Id sequences the restore left behind their table (not so in the source)."""
    backup_entries: int
    backup_pending: int
    """Entries pending in the backup: the sweep's work."""
    backup_articles: int
    old_only_entries: int
    """Entries only the old database had (polled after the backup): lost by the restore,
    found again by polling."""
    old_messages: int
    """Messages the old deployment left in the broker (queued or unacknowledged)."""
    swept: int
    """Entries beat's pending-entry sweep sent again in the new deployment."""
    seconds: dict[str, float]


def count_entries(url: str) -> Counter[str]:
    """Entries by status."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, count(*) FROM entries GROUP BY status"))
            return Counter({str(status): int(n) for status, n in rows})
    finally:
        engine.dispose()


def max_entry_id(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM entries")).scalar())
    finally:
        engine.dispose()


def entries_after(url: str, entry_id: int) -> int:
    """Entries with an id past ``entry_id`` (those the backup did not have)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT count(*) FROM entries WHERE id > :top"), {"top": entry_id}
            )
            return int(found.scalar_one())
    finally:
        engine.dispose()


def sequences_behind(url: str) -> dict[str, str]:
    """The id sequences whose next value is not past their table's largest id (each
    would collide on its next insert), by name. SQLite has none to fall behind: a rowid
    table takes the largest id + 1, and ``sqlite_sequence`` (AUTOINCREMENT) is checked
    if any. A one-row table whose row was written with an explicit id (the migration's
    ``change_log_state``) is listed in any database, restored or not: compare with the
    source."""
    engine = make_engine(url)
    behind: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                owned = conn.execute(sa.text(
                    "SELECT s.relname, t.relname, a.attname FROM pg_class s"
                    " JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')"
                    " JOIN pg_class t ON t.oid = d.refobjid"
                    " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
                    " WHERE s.relkind = 'S'"
                )).all()  # fmt: skip
                for sequence, table, column in owned:
                    last, called = conn.execute(
                        sa.text(f'SELECT last_value, is_called FROM "{sequence}"')
                    ).one()
                    top = conn.execute(
                        sa.text(f'SELECT coalesce(max("{column}"), 0) FROM "{table}"')
                    ).scalar()
                    if (last + 1 if called else last) <= top:
                        behind[sequence] = f"{sequence} at {last}, {table}.{column} at {top}"
            else:
                has = conn.execute(sa.text(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"
                )).scalar()  # fmt: skip
                if has:
                    for table, seq in conn.execute(
                        sa.text("SELECT name, seq FROM sqlite_sequence")
                    ):
                        top = conn.execute(
                            sa.text(f'SELECT coalesce(max(rowid), 0) FROM "{table}"')
                        )
                        if seq < top.scalar():
                            behind[table] = f"sqlite_sequence {table} at {seq}"
    finally:
        engine.dispose()
    return behind


def check_invariants(url: str, published: set[tuple[str, str]]) -> Invariants:
    """Compare the restored database with everything the feeds ever listed."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            entries = conn.execute(sa.text(
                "SELECT f.name, e.guid, e.url, e.status, e.error, e.article_id"
                " FROM entries e JOIN feeds f ON f.id = e.feed_id"
            )).all()  # fmt: skip
            per_url = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT url FROM entries WHERE article_id IS NOT NULL"
                " GROUP BY url HAVING count(DISTINCT article_id) > 1) x"
            )).scalar_one()  # fmt: skip
            articles, urls, guids = conn.execute(sa.text(
                "SELECT count(*), count(DISTINCT canonical_url),"
                " (SELECT count(*) FROM (SELECT DISTINCT feed_id, guid FROM articles"
                "  WHERE guid IS NOT NULL) g) FROM articles"
            )).one()  # fmt: skip
            guided = conn.execute(
                sa.text("SELECT count(*) FROM articles WHERE guid IS NOT NULL")
            ).scalar_one()
            miscounted = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT s.id FROM stories s"
                " LEFT JOIN articles a ON a.story_id = s.id"
                " GROUP BY s.id, s.article_count HAVING count(a.id) <> s.article_count) x"
            )).scalar_one()  # fmt: skip
    finally:
        engine.dispose()
    keys = Counter((name, guid) for name, guid, *_ in entries)
    statuses = Counter(status for *_, status, _error, _article in entries)
    return Invariants(
        entries=len(published),
        stored=statuses["stored"],
        failed=statuses["failed"],
        lost=len(published - set(keys)),
        unexpected=len(set(keys) - published),
        pending=statuses["pending"],
        failed_without_reason=sum(
            1 for *_, status, error, _ in entries if status == "failed" and not error
        ),
        duplicated=(articles - urls)
        + (guided - guids)
        + per_url
        + sum(n - 1 for n in keys.values()),
        miscounted_stories=int(miscounted),
    )


def queued_messages(broker_url: str) -> int:
    """Messages in the broker: waiting in a task queue (every priority list of
    ``celery``), or delivered and not acknowledged (kombu's ``unacked``: they come back
    after the visibility timeout if their worker is gone)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        waiting = sum(
            int(client.llen(key))
            for key in client.scan_iter(match="celery*")
            if client.type(key) == b"list"
        )
        return waiting + int(client.hlen("unacked"))
    finally:
        client.close()


def flush_queue(broker_url: str) -> None:
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.flushdb()
    finally:
        client.close()


def run_drill(
    *,
    database: str,
    source_url: str,
    target_url: str,
    broker_url: str,
    workdir: Path,
    pages: list[Page],
    size: Size = SHORT,
    keep_queue: bool = False,
) -> DrillReport:
    """Run the drill (the module docstring) from ``source_url`` into ``target_url``, an
    empty PostgreSQL database or a SQLite file that does not exist yet."""
    clock = Laps()
    names = [f"drill-{k}" for k in range(size.feeds)]
    with _web(pages, size.page_delay) as web:
        migrate.upgrade(source_url)
        with session_scope(source_url) as session:
            for name in names:
                store.upsert_feed(session, name=name, url=web.base_url + web.feed_path(name),
                                  poll_interval_seconds=2)  # fmt: skip
        web.publish_round(names, size.first, dead_link=True)
        first_round = len(web.published())
        old_env = worker_env(source_url, broker_url, INGEST_STALE_PENDING_SECONDS="300")
        with running_celery(old_env, workdir, beat=True) as old:
            clock.lap("old_workers_ready")
            # 2. The backup, once the workers are well into the first round.
            wait_until(lambda: count_entries(source_url)["stored"] >= first_round // 3,
                       timeout=120, interval=0.1, what="the old deployment storing")  # fmt: skip
            clock.lap("old_storing")
            path = workdir / ("backup.db" if database == "sqlite" else "backup.dump")
            backup.backup_database(source_url, path)
            clock.lap("backup")
            # 3. More items, which only the old database will have.
            web.publish_round(names, size.later)
            expected_old = len(web.published())
            wait_until(lambda: count_entries(source_url).total() >= expected_old,
                       timeout=120, interval=0.2, what="the old feeds' next poll")  # fmt: skip
            clock.lap("old_polled_again")
            # 4. The old deployment is lost mid-work, as in the disaster a restore is for.
            assert old.beat is not None
            old.beat.kill()
            for worker in old.workers:
                worker.kill()
            clock.lap("old_killed")
        old_messages = queued_messages(broker_url)
        old_stored = count_entries(source_url)["stored"]
        dispose_engines()

        # 5. Restore into the fresh database.
        restored = database_ops.restore_database(path, url=target_url)
        clock.lap("restore")
        already = sequences_behind(source_url)
        behind = [v for k, v in sequences_behind(target_url).items() if k not in already]
        in_backup = count_entries(target_url)
        old_only = entries_after(source_url, max_entry_id(target_url))
        assert old_stored > in_backup["stored"], "the workers did not write beside the backup"
        # 6. The old queue.
        if not keep_queue:
            flush_queue(broker_url)

        # 7. New workers and beat on the restored database.
        clock.lap("checks")
        new_env = worker_env(target_url, broker_url, INGEST_STALE_PENDING_SECONDS="4")
        if keep_queue:  # what the killed workers held comes back soon, to the new ones
            new_env["INGEST_BROKER_VISIBILITY_TIMEOUT"] = "6"
        with running_celery(new_env, workdir, beat=True) as new:
            clock.lap("new_workers_ready")
            wait_until(lambda: _settled(target_url, len(web.published())), timeout=180,
                       what="the backup's pending entries and the missed items")  # fmt: skip
            clock.lap("caught_up")
            web.publish_round(names, size.later)  # polling goes on
            wait_until(lambda: _settled(target_url, len(web.published())), timeout=180,
                       what="the items published after the restore")  # fmt: skip
            clock.lap("polled_after_restore")
            # Drain: no new work (beat stops), then the queue runs dry.
            assert new.beat is not None
            new.beat.stop()
            wait_until(lambda: queued_messages(broker_url) == 0 and _settled(
                target_url, len(web.published())), timeout=120, what="the drain")  # fmt: skip
            clock.lap("drained")
            swept = sum(int(e.get("stale_entries", 0))
                        for e in new.events().named("due_feeds_enqueued"))  # fmt: skip
        published = web.published()
    dispose_engines()
    found = check_invariants(target_url, published)
    clock.lap("new_stopped")
    return DrillReport(
        database=database,
        queue="kept" if keep_queue else "flushed",
        entries=found.entries,
        stored=found.stored,
        failed=found.failed,
        lost=found.lost,
        duplicated=found.duplicated,
        pending=found.pending,
        unexpected=found.unexpected,
        failed_without_reason=found.failed_without_reason,
        miscounted_stories=found.miscounted_stories,
        sequences_behind=behind,
        backup_entries=in_backup.total(),
        backup_pending=in_backup["pending"],
        backup_articles=restored.articles,
        old_only_entries=old_only,
        old_messages=old_messages,
        swept=swept,
        seconds={**clock.laps, "total": clock.total()},
    )


class Laps:
    """Seconds each step of the drill took, in order."""

    def __init__(self) -> None:
        self.began = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 2)
        self.last = now

    def total(self) -> float:
        return round(time.monotonic() - self.began, 2)


def _settled(url: str, expected: int) -> bool:
    """Every listed item is an entry and none is pending."""
    counts = count_entries(url)
    return counts.total() >= expected and counts["pending"] == 0


@contextmanager
def _web(pages: list[Page], page_delay: float) -> Iterator[DrillWeb]:
    web = DrillWeb(pages=pages, page_delay=page_delay).start()
    assert isinstance(web, DrillWeb)
    try:
        yield web
    finally:
        web.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--queue", choices=["kept", "flushed"], default=None,
                        help="Default: flushed on SQLite, kept on PostgreSQL.")  # fmt: skip
    parser.add_argument("--feeds", type=int, default=DEFAULT.feeds)
    parser.add_argument("--first", type=int, default=DEFAULT.first)
    parser.add_argument("--later", type=int, default=DEFAULT.later)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    size = Size(feeds=args.feeds, first=args.first, later=args.later)
    pages = load_pages(args.data_dir)
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    failed = False
    redis_server = services.start_redis()
    try:
        for database in databases:
            keep = (args.queue or ("kept" if database == "postgres" else "flushed")) == "kept"
            with tempfile.TemporaryDirectory(prefix="restore-drill-") as tmp:
                report = _run_one(database, Path(tmp), redis_server, pages, size, keep)
            print(json.dumps(asdict(report)), flush=True)
            failed = failed or bool(report.lost or report.duplicated or report.pending
                                    or report.sequences_behind)  # fmt: skip
    finally:
        redis_server.stop()
    return 1 if failed else 0


def _run_one(
    database: str,
    workdir: Path,
    redis_server: services.RedisServer,
    pages: list[Page],
    size: Size,
    keep_queue: bool,
) -> DrillReport:
    broker = redis_server.db_url(1)
    flush_queue(broker)
    if database == "sqlite":
        return run_drill(
            database="sqlite",
            source_url=f"sqlite:///{workdir / 'live.db'}",
            target_url=f"sqlite:///{workdir / 'restored.db'}",
            broker_url=broker, workdir=workdir, pages=pages, size=size, keep_queue=keep_queue,
        )  # fmt: skip
    source, fresh = services.start_postgres(), services.start_postgres()
    try:
        return run_drill(
            database="postgresql",
            source_url=source.create_database("ingest"),
            target_url=fresh.create_database("ingest"),
            broker_url=broker, workdir=workdir, pages=pages, size=size, keep_queue=keep_queue,
        )  # fmt: skip
    finally:
        dispose_engines()
        source.stop()
        fresh.stop()


if __name__ == "__main__":
    raise SystemExit(main())
