"""A batch's articles are stored together: one transaction, one turn at the dedup lock.

What each entry was promised still holds: a transaction that fails stores none of them
and each entry goes on alone as a retry, its attempt counted; an article the database
refuses fails alone, and its neighbours are stored.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlmodel import select

from tests.integration.helpers import (
    fundus_page,
    rss,
    running_celery,
    wait_stored,
    wait_until,
    worker_env,
)
from tests.support import services
from tests.support.factories import add_feed
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article, Entry
from worker.store.articles import DEDUP_LOCK

pytestmark = pytest.mark.integration

PAGES = ["uk/BBC_2024_08_01", "uk/DailyMail_2024_04_27", "uk/TheGuardian_2024_02_24"]


ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
"""For what only PostgreSQL lets a test do from outside: hold the dedup lock's row
while the worker runs, or refuse one article with a trigger."""


def _serve_one_poll(web: LocalWeb, shared_data: Path) -> None:
    """A feed whose one poll finds the three pages: one ``process_entries`` batch."""
    items = []
    for n, key in enumerate(PAGES):
        html, record = fundus_page(shared_data, key)
        web.add_page(f"/p/{n}.html", html, "text/html; charset=utf-8")
        items.append({"title": record["title"], "link": web.url(f"/p/{n}.html"), "guid": f"/p/{n}"})
    web.add_page("feed.xml", rss(items))
    add_feed(name="local", url=web.url("feed.xml"))


def _lock_turns() -> int:
    with session_scope() as session:
        turns = session.execute(
            sa.text("SELECT counter FROM locks WHERE name = :name"), {"name": DEDUP_LOCK}
        ).scalar_one_or_none()
    return int(turns or 0)


def _stored_urls() -> set[str]:
    with session_scope() as session:
        return {url.rsplit("/", 1)[1] for url in session.exec(select(Article.url)).all()}


def _attempts() -> dict[str, int]:
    with session_scope() as session:
        return {str(e.guid): e.attempts for e in session.exec(select(Entry)).all()}


def _psql(server: services.PostgresServer, url: str) -> psycopg.Connection:
    return psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=postgres dbname={url.rsplit('/', 1)[1]}"
    )


def test_a_batch_stores_its_articles_in_one_transaction_with_one_turn_at_the_lock(
    broker_url: str, database_url: str, web: LocalWeb, shared_data: Path, tmp_path: Path
) -> None:
    _serve_one_poll(web, shared_data)
    with running_celery(worker_env(database_url, broker_url), tmp_path, beat=True) as celery:
        entries = wait_stored(len(PAGES))
    assert '"worker.tasks.process_entries"' in celery.log()  # the three went out as one batch
    assert _lock_turns() == 1  # one turn for the batch (stored alone: one per article)
    assert len({e.article_id for e in entries}) == len(PAGES)
    assert _stored_urls() == {f"{n}.html" for n in range(len(PAGES))}
    assert _attempts() == {f"/p/{n}": 1 for n in range(len(PAGES))}


@ON_POSTGRES
def test_a_batch_whose_store_fails_sends_each_entry_on_alone_with_its_attempt_counted(
    broker_url: str,
    database_url: str,
    postgres_server: services.PostgresServer,
    web: LocalWeb,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    """The test holds the dedup lock; the worker's ``lock_timeout`` turns the wait into
    PostgreSQL's LockNotAvailable (a retryable OperationalError). Nothing of the batch
    is stored; each entry is retried alone, and stored once the lock is free."""
    _serve_one_poll(web, shared_data)
    holder = _psql(postgres_server, database_url)
    holder.execute(
        "INSERT INTO locks (name, counter) VALUES (%s, 0) ON CONFLICT (name) DO NOTHING",
        (DEDUP_LOCK,),
    )
    holder.commit()
    holder.execute("SELECT counter FROM locks WHERE name = %s FOR UPDATE", (DEDUP_LOCK,))
    env = worker_env(
        f"{database_url}?options=-c%20lock_timeout%3D300", broker_url, INGEST_RETRY_BASE_SECONDS="1"
    )
    try:
        with running_celery(env, tmp_path, beat=True) as celery:
            wait_until(
                lambda: celery.log().count("entry_retry_scheduled") >= len(PAGES),
                timeout=60,
                what="the batch's store failed and each entry went on alone",
            )
            assert _stored_urls() == set()
            holder.commit()
            wait_stored(len(PAGES))
    finally:
        holder.close()
    assert "lock timeout" in celery.log()
    assert _stored_urls() == {f"{n}.html" for n in range(len(PAGES))}
    # The failed attempt in the batch, and the retry that stored it.
    assert _attempts() == {f"/p/{n}": 2 for n in range(len(PAGES))}


@ON_POSTGRES
def test_an_article_the_database_refuses_fails_alone_and_its_neighbours_are_stored(
    broker_url: str,
    database_url: str,
    postgres_server: services.PostgresServer,
    web: LocalWeb,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    """A trigger refuses the middle page's article (an error that no retry mends):
    the batch's transaction fails, each article is stored alone, and only that one
    is missing."""
    _serve_one_poll(web, shared_data)
    with _psql(postgres_server, database_url) as admin:
        admin.execute(
            "CREATE FUNCTION refuse_article() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'article refused by the test'; END $$"
        )
        admin.execute(
            "CREATE TRIGGER refuse_article BEFORE INSERT ON articles FOR EACH ROW "
            "WHEN (NEW.url LIKE '%/p/1.html') EXECUTE FUNCTION refuse_article()"
        )
    with running_celery(worker_env(database_url, broker_url), tmp_path, beat=True) as celery:
        wait_until(lambda: len(_stored_urls()) == 2, timeout=60, what="the two neighbours stored")
        wait_until(lambda: "entry_store_failed" in celery.log(), timeout=30, what="the refusal")
    assert _stored_urls() == {"0.html", "2.html"}
    assert "entry_batch_store_failed" in celery.log()
    assert "article refused by the test" in celery.log()
    with session_scope() as session:
        statuses = {str(e.guid): e.status for e in session.exec(select(Entry)).all()}
    assert statuses == {"/p/0": "stored", "/p/1": "pending", "/p/2": "stored"}
