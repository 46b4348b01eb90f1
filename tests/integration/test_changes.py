"""The change feed on SQLite and PostgreSQL: every writer's changes are logged, positions
are dense and only grow, a transaction that commits late is never skipped, concurrent
writers' changes appear exactly once, retention makes a reader behind it resync; and the
API, the CLI (`--follow` in a real process) and the beat task over it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, col
from typer.testing import CliRunner

from tests.integration.helpers import running_celery, wait_until, worker_env
from tests.support import factories, services
from tests.support.factories import add_feed, add_listed_article
from worker import changefeed, migrate, operations, store
from worker.cli import app as cli_app
from worker.db import get_engine, session_scope
from worker.models import Change, Feed, utcnow
from worker.schemas import ChangeOut
from worker.store.sql import table_of

pytestmark = pytest.mark.integration

Seen = list[tuple[str, int, str]]


def read_all(after: int, **options: Any) -> tuple[list[ChangeOut], int]:
    """Every change after ``after``, page by page, checking on the way that positions
    only grow and, unfiltered, follow each other with no gap; and where it ended."""
    found: list[ChangeOut] = []
    while True:
        page = operations.read_changes(after=after, **options)
        for change in page.changes:
            assert change.position > after, (change.position, after)
            if "kinds" not in options:
                assert change.position == after + 1, f"gap before {change.position}"
            after = change.position
        found += page.changes
        assert page.next >= after
        after = page.next
        if page.next == page.head:
            return found, after


def seen(changes: list[ChangeOut]) -> Seen:
    return [(c.kind, c.id, c.op) for c in changes]


# --- what is logged ----------------------------------------------------------------


def test_every_writer_of_articles_stories_and_feeds_is_logged(database_url: str) -> None:
    """ORM writes, Core bulk updates (detach, reclassify's story recount) and deletes:
    each shows up, with the row as it is now, or none once deleted."""
    feed_id = add_feed(name="kyiv")
    changes, at = read_all(0)
    assert seen(changes) == [("feed", feed_id, "insert")]
    assert changes[0].row is not None
    assert changes[0].row.name == "kyiv"  # type: ignore[union-attr]

    first = factories.save_article(feed_id=feed_id)
    story = first.story_id
    changes, at = read_all(at)
    assert seen(changes) == [("story", story, "insert"), ("article", first.article_id, "insert")]

    # A copy joins the story (a merge into an existing story: the story is updated).
    copy = factories.save_article(url="https://other.example/wire/1", title="Drones over Kyiv")
    assert copy.story_id == story
    changes, at = read_all(at)
    assert seen(changes) == [("article", copy.article_id, "insert"), ("story", story, "update")]

    # A re-crawl that finds a new headline: a title edit of the stored article.
    factories.save_article(feed_id=feed_id, title="Kyiv repels drones (updated)")
    changes, at = read_all(at)
    assert seen(changes) == [("article", first.article_id, "update"), ("story", story, "update")]
    assert changes[0].row.title == "Kyiv repels drones (updated)"  # type: ignore[union-attr]

    # Reclassification, as the reclassify task runs it.
    with session_scope() as session:
        store.update_classification(
            session,
            article_id=copy.article_id,
            classification=factories.article_record(
                title="x", body="unrelated text"
            ).classification,
        )
    changes, at = read_all(at)
    assert seen(changes) == [("article", copy.article_id, "update"), ("story", story, "update")]
    assert changes[0].row.security_score < 0.5  # type: ignore[union-attr]

    # Operator changes to the feed, then its removal: its article is detached (a Core
    # bulk update) and the feed row deleted.
    operations.set_feed_enabled("kyiv", enabled=False)
    changes, at = read_all(at)
    assert seen(changes) == [("feed", feed_id, "update")]
    operations.remove_feed("kyiv")
    changes, at = read_all(at)
    assert seen(changes) == [("article", first.article_id, "update"), ("feed", feed_id, "delete")]
    assert changes[0].row.feed_id is None  # type: ignore[union-attr]
    assert changes[1].row is None


def test_poll_bookkeeping_alone_is_not_a_change(database_url: str) -> None:
    """The beat's claim (next_poll_at) and the poll lease are not changes; a poll's
    outcome is."""
    feed_id = add_feed(name="kyiv")
    _, at = read_all(0)
    now = utcnow()
    with session_scope() as session:
        assert store.due_feed_ids(session, now=now, limit=10, claim_seconds=60) == [feed_id]
        assert store.acquire_feed_lease(
            session, feed_id=feed_id, owner="t", now=now, lease_seconds=60
        )
        store.release_feed_lease(session, feed_id=feed_id, owner="t")
    assert read_all(at)[0] == []
    with session_scope() as session:
        session.execute(sa.update(Feed).where(col(Feed.id) == feed_id).values(error_count=3))
    assert seen(read_all(at)[0]) == [("feed", feed_id, "update")]


def _sample(column: sa.Column[Any], current: Any) -> Any:
    """Another value of the column's type (the model field's, less None)."""
    annotation = Feed.model_fields[column.name].annotation
    if get_origin(annotation) is list:
        return ["changed"]  # the JSON column (tags)
    kind = next((a for a in get_args(annotation) if a is not type(None)), annotation)
    if kind is datetime:
        return utcnow() - timedelta(days=3)
    if kind is bool:
        return not current
    if kind is int:
        return (current or 0) + 7
    if kind is float:
        return (current or 0.0) + 1.5
    if kind is str:
        return f"changed-{column.name}"[:16]
    raise AssertionError(f"no sample value for {column.name}: {annotation}")


BOOKKEEPING = {"next_poll_at", "lease_owner", "lease_until"}


def test_every_feed_column_but_the_bookkeeping_is_a_change(database_url: str) -> None:
    """The feeds trigger lists its columns (migration 0003): a column added later without
    recreating the trigger would silently not be a change, and fails here."""
    feed_id = add_feed(name="kyiv")
    _, at = read_all(0)
    feeds = table_of(Feed)
    for column in feeds.columns:
        if column.name == "id":
            continue
        with session_scope() as session:
            current = session.execute(sa.select(column).where(feeds.c.id == feed_id)).scalar_one()
            session.execute(
                sa.update(feeds)
                .where(feeds.c.id == feed_id)
                .values({column.name: _sample(column, current)})
            )
        changes, at = read_all(at)
        expected = [] if column.name in BOOKKEEPING else [("feed", feed_id, "update")]
        assert seen(changes) == expected, column.name


def test_pending_changes_of_one_row_fold_into_one(database_url: str) -> None:
    """Changes committed between two reads fold per row (readers get current rows):
    insert + updates read as one insert, updates as one update, anything + delete as
    one delete; the folded change keeps the place of the row's first change."""
    _, at = read_all(0)
    a = add_feed(name="a")
    b = add_feed(name="b")
    for n in range(3):
        add_feed(name="a", tags=[f"t{n}"])  # updates by name
    changes, at = read_all(at)
    assert seen(changes) == [("feed", a, "insert"), ("feed", b, "insert")]
    assert changes[0].row.tags == ["t2"]  # type: ignore[union-attr]
    add_feed(name="a", tags=["x"])
    add_feed(name="b", tags=["x"])
    add_feed(name="a", tags=["y"])
    operations.remove_feed("b")
    changes, at = read_all(at)
    assert seen(changes) == [("feed", a, "update"), ("feed", b, "delete")]


def test_kinds_filter_moves_past_other_kinds(database_url: str) -> None:
    add_feed(name="kyiv")
    article = add_listed_article(n=1)
    page = operations.read_changes(after=0, kinds="article")
    assert [(c.kind, c.id) for c in page.changes] == [("article", article)]
    assert page.next == page.head == 3  # feed, story, article
    assert operations.read_changes(after=page.next, kinds=["story", "feed"]).changes == []
    with pytest.raises(operations.BadInputError, match="unknown kind 'articles'"):
        operations.read_changes(after=0, kinds="articles")


# --- gap safety ---------------------------------------------------------------------


def _change_row_ids(kind: str, entity_id: int) -> list[tuple[int, int | None]]:
    with session_scope() as session:
        rows = session.execute(
            sa.select(col(Change.id), col(Change.position)).where(
                col(Change.kind) == kind, col(Change.entity_id) == entity_id
            )
        ).all()
    return [(int(r[0]), r[1]) for r in rows]


def test_a_transaction_that_commits_late_is_not_skipped(database_url: str) -> None:
    """Writer A writes first and commits last. On PostgreSQL, writer B commits in
    between and a reader reads past B's change; A's change must still reach the reader,
    after it (a log paged by id would have skipped A: its row id is lower). On SQLite,
    B waits for A's write lock, and a reader does not wait with it."""
    postgres = database_url.startswith("postgresql")
    _, at = read_all(0)
    before = add_feed(name="before")  # committed, not yet numbered when A starts

    late = Session(get_engine(), expire_on_commit=False)
    feed, _ = store.upsert_feed(late, name="late", url="https://late.example/rss")
    late.flush()
    assert feed.id is not None

    written: dict[str, store.SaveOutcome] = {}
    b = threading.Thread(target=lambda: written.update(b=factories.save_article()))
    b.start()
    b.join(timeout=10 if postgres else 1)
    assert b.is_alive() is not postgres  # SQLite: B waits for A's write lock

    started = time.monotonic()
    first, at = read_all(at)
    assert time.monotonic() - started < 10  # the reader did not wait for A
    try:
        if postgres:
            outcome = written["b"]
            assert seen(first) == [
                ("feed", before, "insert"),
                ("story", outcome.story_id, "insert"),
                ("article", outcome.article_id, "insert"),
            ]
        else:
            # The pending change could not be numbered while A held the write lock:
            # the reader got what was numbered (nothing), not a gap.
            assert first == []
    finally:
        late.commit()
        late.close()
    b.join(timeout=60)
    assert not b.is_alive()
    second, at = read_all(at)

    outcome = written["b"]
    everything = seen(first + second)
    assert Counter(everything) == Counter(
        [
            ("feed", before, "insert"),
            ("feed", feed.id, "insert"),
            ("story", outcome.story_id, "insert"),
            ("article", outcome.article_id, "insert"),
        ]
    )
    if postgres:
        assert seen(second) == [("feed", feed.id, "insert")]
        ((late_row, late_position),) = _change_row_ids("feed", feed.id)
        ((b_row, b_position),) = _change_row_ids("article", outcome.article_id)
        assert late_row < b_row  # written first ...
        assert late_position is not None
        assert b_position is not None
        assert late_position > b_position  # ... and numbered after, when it committed


def test_concurrent_writers_and_readers_see_each_change_once(database_url: str) -> None:
    """Four writer threads and two reader threads at once: every reader sees every
    article exactly once, in dense, growing positions, however the commits interleave."""
    writers, per_writer = 4, 12
    done = threading.Event()
    errors: list[BaseException] = []
    seen_by: list[list[ChangeOut]] = [[], []]

    def write(w: int) -> None:
        try:
            for n in range(per_writer):
                add_listed_article(n=w * 1000 + n)
                if n % 4 == 0:
                    add_feed(name=f"w{w}-{n}")
        except BaseException as exc:
            errors.append(exc)

    def read(r: int) -> None:
        after = 0
        try:
            while True:
                finished = done.is_set()
                changes, after = read_all(after, limit=7)
                seen_by[r] += changes
                if finished:
                    return
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(r,)) for r in range(2)]
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    for thread in readers:
        thread.join(timeout=60)
    assert not errors, errors

    with session_scope() as session:
        rows = Counter(
            {
                (kind, int(i)): 1
                for kind, table in (
                    ("article", "articles"),
                    ("story", "stories"),
                    ("feed", "feeds"),
                )
                for i in session.execute(sa.text(f"SELECT id FROM {table}")).scalars()
            }
        )
    assert sum(1 for kind, _ in rows if kind == "article") == writers * per_writer
    for changes in seen_by:
        positions = [c.position for c in changes]
        assert positions == list(range(1, len(positions) + 1))
        assert Counter((c.kind, c.id) for c in changes) == rows
        assert {c.op for c in changes} == {"insert"}


# --- retention ---------------------------------------------------------------------


def _age(positions: range, days: float) -> None:
    with session_scope() as session:
        session.execute(
            sa.update(Change)
            .where(col(Change.position).in_(list(positions)))
            .values(changed_at=utcnow() - timedelta(days=days))
        )


def test_retention_prunes_a_prefix_and_a_reader_behind_it_must_resync(
    database_url: str,
) -> None:
    for n in range(5):
        add_feed(name=f"f{n}")
    _, head = read_all(0)
    assert head == 5
    _age(range(1, 4), days=10)
    result = changefeed.maintain(retention_days=7)
    assert (result["pruned"], result["horizon"], result["head"]) == (3, 3, 5)

    with pytest.raises(operations.ResyncRequiredError) as gone:
        operations.read_changes(after=2)
    assert (gone.value.reason, gone.value.horizon, gone.value.head) == ("pruned", 3, 5)
    assert "resync" in str(gone.value)
    assert "follow from position 5" in str(gone.value)
    assert [c.position for c in operations.read_changes(after=3).changes] == [4, 5]

    with pytest.raises(operations.ResyncRequiredError) as ahead:
        operations.read_changes(after=6)
    assert ahead.value.reason == "ahead"

    # Everything old: the log empties, and numbering goes on after the horizon.
    _age(range(4, 6), days=10)
    assert changefeed.maintain(retention_days=7)["horizon"] == 5
    with session_scope() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Change)).scalar() == 0
    assert operations.read_changes(after=5).changes == []
    add_feed(name="new")
    assert [c.position for c in operations.read_changes(after=5).changes] == [6]


# --- the migration ------------------------------------------------------------------


def test_migration_logs_existing_rows_and_downgrades_cleanly(database_url: str) -> None:
    """Rows stored before 0003 are logged as inserts (feeds first), so position 0 still
    means everything; downgrading removes the triggers with the tables."""
    migrate.downgrade(database_url, "0002")
    from worker.db import dispose_engines

    dispose_engines()
    with get_engine(database_url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO feeds (name, url, tags, enabled, state, conditional_get,"
                " error_count, created_at, updated_at) VALUES ('old', 'https://old.example/',"
                " '[]', true, 'healthy', true, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(database_url)
    dispose_engines()
    article = add_listed_article(n=1)
    changes, _ = read_all(0)
    assert [(c.kind, c.op) for c in changes] == [
        ("feed", "insert"),
        ("story", "insert"),
        ("article", "insert"),
    ]
    assert changes[2].id == article
    migrate.downgrade(database_url, "0002")
    dispose_engines()
    with get_engine(database_url).begin() as connection:  # no trigger left behind
        connection.execute(sa.text("UPDATE feeds SET error_count = 1"))
        connection.execute(sa.text("DELETE FROM articles"))
    migrate.upgrade(database_url)


def test_every_table_has_its_triggers_at_head(database_url: str) -> None:
    """A later migration that makes SQLite copy a table (Alembic's batch "recreate")
    drops that table's triggers with it; this names the one that went missing."""
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        if database_url.startswith("sqlite")
        else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    )
    with session_scope() as session:
        names = set(session.execute(sa.text(query)).scalars())
    expected = {
        f"change_log_{kind}_{event}"
        for kind in ("article", "story", "feed")
        for event in ("insert", "update", "delete")
    }
    assert expected <= names, sorted(expected - names)


# --- the doors ----------------------------------------------------------------------


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    from worker.api import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def test_api_round_trip(client: TestClient) -> None:
    assert client.get("/changes").json() == {"changes": [], "next": 0, "head": 0}
    feed_id = add_feed(name="kyiv")
    article = add_listed_article(n=1, feed_id=feed_id)
    page = client.get("/changes", params={"after": 0, "limit": 2}).json()
    assert [(c["position"], c["kind"], c["op"]) for c in page["changes"]] == [
        (1, "feed", "insert"),
        (2, "story", "insert"),
    ]
    assert page["changes"][0]["row"]["name"] == "kyiv"
    assert (page["next"], page["head"]) == (2, 3)
    page = client.get("/changes", params={"after": page["next"], "include_body": "true"}).json()
    (change,) = page["changes"]
    assert (change["kind"], change["id"], change["row"]["feed"]) == ("article", article, "kyiv")
    assert change["row"]["body"] == "body of article 1"
    assert page["next"] == 3
    assert client.get("/changes", params={"after": 3}).json()["changes"] == []
    only = client.get("/changes", params={"kinds": "story,feed"}).json()
    assert [c["kind"] for c in only["changes"]] == ["feed", "story"]
    assert only["next"] == 3

    bad = client.get("/changes", params={"kinds": "comments"})
    assert bad.status_code == 400
    assert "unknown kind 'comments'" in bad.json()["detail"]
    assert client.get("/changes", params={"after": -1}).status_code == 422

    ahead = client.get("/changes", params={"after": 9})
    assert ahead.status_code == 410
    assert ahead.json()["reason"] == "ahead"
    assert ahead.json()["resync"] is True
    _age(range(1, 3), days=30)
    changefeed.maintain(retention_days=7)
    gone = client.get("/changes", params={"after": 1})
    assert gone.status_code == 410
    body = gone.json()
    assert (body["reason"], body["horizon"], body["head"]) == ("pruned", 2, 3)
    assert "resync" in body["detail"]
    assert "/changes" in client.get("/openapi.json").json()["paths"]


runner = CliRunner()


def test_cli_pages_and_errors(database_url: str) -> None:
    add_feed(name="kyiv")
    add_listed_article(n=1)
    result = runner.invoke(cli_app, ["changes", "--json", "--limit", "2"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert [c["kind"] for c in page["changes"]] == ["feed", "story"]
    assert page["next"] == 2
    table = runner.invoke(cli_app, ["changes", "--after", "2"])
    assert table.exit_code == 0
    assert "article 1" in table.stdout
    assert "--after 3" in table.stdout
    bad = runner.invoke(cli_app, ["changes", "--kinds", "comments"])
    assert bad.exit_code == 2
    assert "unknown kind" in bad.stderr
    _age(range(1, 2), days=30)
    changefeed.maintain(retention_days=7)
    behind = runner.invoke(cli_app, ["changes", "--after", "0"])
    assert behind.exit_code == 4
    assert "pruned" in behind.stderr
    assert "resync" in behind.stderr


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        into.put(line)


def test_follow_prints_json_lines_and_stops_cleanly_on_a_signal(database_url: str) -> None:
    """A real `ingest changes --follow --json` process: each change is one flushed line
    as it is committed; on SIGINT (SQLite run) or SIGTERM (PostgreSQL run) it exits 0
    and names the position to resume from."""
    add_feed(name="before")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "changes", "--follow", "--json",
         "--interval", "0.1", "--after", "0"],
        env={**os.environ, "INGEST_LOG_LEVEL": "WARNING"}, cwd=services.REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=60))
        assert (first["position"], first["kind"], first["row"]["name"]) == (1, "feed", "before")
        add_feed(name="while-following")
        second = json.loads(lines.get(timeout=30))
        assert (second["position"], second["row"]["name"]) == (2, "while-following")
        sent = signal.SIGINT if database_url.startswith("sqlite") else signal.SIGTERM
        process.send_signal(sent)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "resume with: ingest changes --follow --after 2" in process.stderr.read()


def test_beat_numbers_changes_for_sql_readers(
    database_url: str, broker_url: str, tmp_path: Path
) -> None:
    """With no API reader, a real worker and beat number new changes within seconds, so
    apps reading change_log directly see them."""
    feed_id = add_feed(name="kyiv")
    env = worker_env(database_url, broker_url, INGEST_CHANGES_INTERVAL_SECONDS="0.5")
    with running_celery(env, tmp_path, beat=True):
        numbered = wait_until(
            lambda: _change_row_ids("feed", feed_id)[0][1], timeout=60, what="a position"
        )
    assert numbered == 1
