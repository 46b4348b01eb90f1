"""The operator CLI through its real entry point (typer's CliRunner on `worker.cli.app`,
and `python -m worker.cli` for the container commands) against real databases, a real
redis-server and a real Celery worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, select
from typer.testing import CliRunner

from tests.integration.helpers import (
    fundus_page,
    rss,
    running_celery,
    serve_seed,
    wait_until,
    worker_env,
)
from tests.support import services
from tests.support.factories import add_listed_article
from tests.support.monitoring import scraped, worker_metric_names
from worker import store
from worker.classify import CLASSIFIER_VERSION
from worker.cli import app
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article, CrawlRequest, Entry, Feed

pytestmark = pytest.mark.integration

runner = CliRunner()


def ingest(*args: str) -> Any:
    return runner.invoke(app, list(args))


def ingest_json(*args: str) -> Any:
    result = ingest(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    """`ingest db upgrade`, the migrate container's command, on a fresh database."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {**os.environ, "INGEST_DATABASE_URL": url}
    for _ in range(2):  # idempotent: a second run is a no-op
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "db", "upgrade"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"feeds", "articles", "stories", "entries", "crawl_requests"} <= tables


def test_feed_lifecycle(database_url: str, tmp_path: Path) -> None:
    added = ingest_json("feeds", "add", "kyiv", "https://kyiv.example/rss", "--tag", "ua")
    assert added["created"] is True
    toml = tmp_path / "feeds.toml"
    toml.write_text(
        '[[feed]]\nname = "kyiv"\nurl = "https://kyiv.example/rss"\n'
        '[[feed]]\nname = "wire"\nurl = "https://wire.example/rss"\n'
    )
    assert ingest_json("feeds", "import", str(toml)) == {"created": 1, "updated": 1}
    assert [f["name"] for f in ingest_json("feeds", "list")] == ["kyiv", "wire"]

    disabled = ingest_json("feeds", "disable", "wire")
    assert (disabled["enabled"], disabled["state"]) == (False, "disabled")
    with session_scope() as session:
        session.execute(
            sa.update(Feed).where(col(Feed.name) == "kyiv")
            .values(state="failing", error_count=4, last_error="boom")
        )  # fmt: skip
    enabled = ingest_json("feeds", "enable", "kyiv")
    assert (enabled["enabled"], enabled["state"], enabled["error_count"]) == (True, "healthy", 0)

    result = ingest("feeds", "remove", "wire", "--yes")
    assert result.exit_code == 0, result.stderr
    assert [f["name"] for f in ingest_json("feeds", "list")] == ["kyiv"]


@pytest.mark.parametrize(
    "args",
    [
        ["feeds", "enable", "nope"],
        ["feeds", "disable", "nope"],
        ["feeds", "remove", "nope", "--yes"],
        ["articles", "--feed", "nope"],
        ["recrawl", "--feed", "nope"],
    ],
)
def test_unknown_feed_is_exit_2(sqlite_url: str, args: list[str]) -> None:
    result = ingest(*args)
    assert result.exit_code == 2
    assert "unknown feed 'nope'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["articles", "--since", "yesterday-ish"],
        ["articles", "--until", "2026-13-45"],
        ["stories", "--since", "3 fortnights"],
        ["recrawl", "--since", "soon"],
        ["reclassify", "--since", "2026/05/01"],
    ],
)
def test_bad_date_is_exit_2(sqlite_url: str, args: list[str]) -> None:
    result = ingest(*args)
    assert result.exit_code == 2
    assert "bad date" in result.stderr


def test_other_bad_input_is_exit_2(sqlite_url: str) -> None:
    assert ingest("recrawl").exit_code == 2  # none of --feed/--url/--since
    assert ingest("recrawl", "--url", "x", "--since", "2d").exit_code == 2
    bad_url = ingest("recrawl", "--url", "ftp://example.org/a")
    assert bad_url.exit_code == 2
    assert "not an http(s) URL" in bad_url.stderr
    assert ingest("articles", "--label", "maybe").exit_code == 2
    assert ingest("feeds", "add", "x", "not-a-url").exit_code == 2


def test_bad_setting_is_exit_2_with_the_variable_named(tmp_path: Path) -> None:
    env = {**os.environ, "INGEST_PER_HOST_RATE": "fast", "INGEST_METRICS_PORT": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "feeds", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "INGEST_PER_HOST_RATE" in done.stderr
    assert "INGEST_METRICS_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_broker_is_exit_3(sqlite_url: str, dead_broker: str) -> None:
    ingest_json("feeds", "add", "kyiv", "https://kyiv.example/rss")
    result = ingest("recrawl", "--feed", "kyiv")
    assert result.exit_code == 3
    assert "broker unreachable" in result.stderr
    with session_scope() as session:  # nothing was recorded as requested
        assert session.exec(select(CrawlRequest)).all() == []
    add_listed_article(n=1, classifier_version="old")
    assert ingest("reclassify").exit_code == 3
    health = ingest("health", "--json")
    assert health.exit_code == 1
    assert json.loads(health.stdout)["broker"].startswith("error")


def test_reading_commands(database_url: str) -> None:
    """articles / stories / stats over rows stored by the real store code paths."""
    from tests.integration.test_api import T0

    feed = ingest_json("feeds", "add", "kyiv", "https://kyiv.example/rss")
    first = add_listed_article(n=1, feed_id=feed["id"], topics=["battlefield"], published_at=T0)
    add_listed_article(n=2, feed_id=feed["id"], positive=False, published_at=T0)
    with session_scope() as session:
        story_id = session.get(Article, first).story_id  # type: ignore[union-attr]
    add_listed_article(n=3, topics=["sanctions"], story_id=story_id)

    rows = ingest_json("articles", "--label", "ukraine-security")
    assert [r["title"] for r in rows] == ["article 3", "article 1"]
    assert [r["title"] for r in ingest_json("articles", "--topic", "battlefield")] == ["article 1"]
    assert [r["feed"] for r in ingest_json("articles", "--feed", "kyiv")] == ["kyiv", "kyiv"]
    assert ingest_json("articles", "--since", "2026-05-02") == [
        r for r in ingest_json("articles") if r["title"] == "article 3"
    ]
    table = ingest("articles")
    assert table.exit_code == 0
    assert "article 1" in table.stdout

    stories = ingest_json("stories", "--label", "ukraine-security", "--min-articles", "2")
    assert [s["article_count"] for s in stories] == [2]

    stats = ingest_json("stats")
    assert stats["totals"]["articles"] == 3
    assert stats["totals"]["ukraine_security"] == 2
    assert stats["feeds"][0]["name"] == "kyiv"
    assert stats["feeds"][0]["articles"] == 2
    assert stats["feeds"][0]["ukraine_security"] == 1
    assert ingest("stats").exit_code == 0


def test_stats_lists_paused_hosts_and_why(sqlite_url: str, broker_url: str) -> None:
    """A host paused by any worker (its circuit breaker, or a 429) is listed with its reason."""
    import redis

    from worker.politeness import HostRate, HostRates, RedisHostLimiter

    client = redis.Redis.from_url(broker_url)
    reason = "circuit breaker: 3 timeouts or 5xx within 300s (last: timeout url=http://x/)"
    RedisHostLimiter(client, HostRates(HostRate(1.0, 1), {})).pause(
        "drip.example", 300, reason=reason
    )
    client.close()

    (paused,) = ingest_json("stats")["paused_hosts"]
    assert paused["host"] == "drip.example"
    assert paused["reason"] == reason
    assert 290 < paused["seconds_left"] <= 300
    table = ingest("stats")
    assert table.exit_code == 0
    assert "paused host drip.example" in table.stdout
    assert "circuit breaker: 3 timeouts" in table.stdout


def test_stats_says_when_paused_hosts_are_unknown(sqlite_url: str, dead_broker: str) -> None:
    """Redis away: the database's stats still print, and the paused hosts are unknown."""
    assert ingest_json("stats")["paused_hosts"] is None
    table = ingest("stats")
    assert table.exit_code == 0
    assert "paused hosts: unknown" in table.stdout


# --- with a real worker -----------------------------------------------------------


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_failed_recrawl_says_why(
    database_url: str, broker_url: str, web: LocalWeb, tmp_path: Path
) -> None:
    """A re-crawl whose feed poll fails ends `failed` with the poll's error on the row,
    in `recrawl`'s exit code and output and in `crawl-requests` (not only in the logs)."""
    ingest_json("feeds", "add", "gone", web.url("no-such-feed.xml"))  # answers 404
    with running_celery(worker_env(database_url, broker_url), tmp_path) as celery:
        result = ingest("recrawl", "--feed", "gone", "--json")
        assert result.exit_code == 1, (result.stdout, result.stderr)
        row = json.loads(result.stdout)
        assert row["status"] == "failed"
        assert "404" in row["error"], row
        shown = ingest_json("crawl-requests", str(row["id"]))
        assert (shown["status"], shown["error"]) == ("failed", row["error"])
        table = ingest("crawl-requests")
        assert table.exit_code == 0
        assert "404" in table.stdout
    events = celery.events()
    events.expect("feed_poll_failed", error_class="http_4xx")
    events.expect("crawl_request_failed", crawl_request_id=row["id"], reason=row["error"])
    with session_scope() as session:
        stored = session.get(CrawlRequest, row["id"])
        assert stored is not None
        assert stored.error == row["error"]
        assert stored.finished_at is not None


def test_recrawl_reclassify_and_worker_metrics(
    database_url: str, broker_url: str, web: LocalWeb, shared_data: Path, tmp_path: Path
) -> None:
    """recrawl --feed/--url/--since and reclassify, executed by a real `ingest worker`
    that serves merged Prometheus metrics and writes JSON logs with task context."""
    metrics_port = services.free_port()
    env = worker_env(
        database_url,
        broker_url,
        INGEST_METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    serve_seed(web)
    html, record = fundus_page(shared_data, "ca/GlobalNews_2026_05_24")
    web.add_page("kyiv.html", html, "text/html; charset=utf-8")
    web.add_page("extra.html", html.replace(b"Kyiv", b"Kyiv city"), "text/html; charset=utf-8")
    web.add_page("feed.xml", rss([
        {"title": "Seed", "link": web.url("seed-article.html"), "guid": "seed"},
        {"title": record["title"], "link": web.url("kyiv.html"), "guid": "kyiv"},
    ]))  # fmt: skip
    ingest_json("feeds", "add", "local", web.url("feed.xml"))
    with running_celery(env, tmp_path) as celery:
        first = ingest_json("recrawl", "--feed", "local", "--requested-by", "alice")
        assert (first["status"], first["total"], first["done"]) == ("done", 2, 2), first
        assert first["requested_by"] == "alice"

        forced = ingest_json("recrawl", "--feed", "local", "--force")
        assert (forced["status"], forced["done"], forced["force"]) == ("done", 2, True)

        one = ingest_json("recrawl", "--url", web.url("extra.html"))
        assert (one["status"], one["done"]) == ("done", 1), one
        since = ingest_json("recrawl", "--since", "1h", "--force")
        assert (since["status"], since["total"], since["done"]) == ("done", 3, 3), since

        with session_scope() as session:
            articles = session.exec(select(Article)).all()
            assert len(articles) == 3
            assert sum(a.feed_id is None for a in articles) == 1
            entries = session.exec(select(Entry)).all()
            assert {e.crawl_request_id for e in entries} == {since["id"]}
            session.execute(sa.update(Article).values(classifier_version="rules-old"))
        reclassified = ingest_json("reclassify")
        assert (reclassified["articles"], reclassified["done"]) == (3, 3)
        assert reclassified["finished"] is True
        with session_scope() as session:
            versions = set(session.exec(select(Article.classifier_version)).all())
        assert versions == {CLASSIFIER_VERSION}
        again = ingest_json("reclassify", "--all")
        assert (again["articles"], again["done"], again["finished"]) == (3, 3, True)

        listing = ingest_json("crawl-requests")
        assert [r["kind"] for r in listing] == ["since", "url", "feed", "feed"]

        def metrics_settled() -> str:
            # A task's duration is recorded after its work has committed, so the
            # database can show "done" a moment before the last count lands.
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            task = "worker.tasks.reclassify_batch"
            settled = _metric(text, "ingest_task_duration_seconds_count", task=task) >= 2
            return text if settled else ""

        text = wait_until(metrics_settled, timeout=20, what="task metrics")
        # What deploy/prometheus/alerts.yaml and the Grafana dashboard query is really
        # served (webhook deliveries aside: this run delivers none).
        unserved = worker_metric_names() - {"ingest_webhook_deliveries_total"} - set(scraped(text))
        assert not unserved, unserved
        # Counted in the pool's child processes, served merged by the main process.
        assert _metric(text, "ingest_feed_polls_total", status="ok") == 2
        assert _metric(text, "ingest_fetches_total", kind="feed", status="200") == 2
        assert _metric(text, "ingest_articles_stored_total", action="created") == 2
        assert _metric(text, "ingest_articles_stored_total") == 2 + 2 + 1 + 3
        # extra.html is the Kyiv page with a word changed: a near-duplicate.
        assert _metric(text, "ingest_duplicates_total", kind="near") == 1
        assert _metric(text, "ingest_classifier_positives_total") >= 2
        # Entries go out in batches of at most INGEST_ENTRY_BATCH_SIZE (8): the poll's
        # 2, the forced feed re-crawl's 2 and the `since` request's 3 are one
        # `process_entries` task each; the lone URL is a `process_entry`.
        assert _metric(
            text, "ingest_task_duration_seconds_count", task="worker.tasks.process_entries"
        ) == 3  # fmt: skip
        assert _metric(
            text, "ingest_task_duration_seconds_count", task="worker.tasks.process_entry"
        ) == 1  # fmt: skip
        assert _metric(
            text, "ingest_task_duration_seconds_count", task="worker.tasks.reclassify_batch"
        ) == 2  # fmt: skip

        # A scheduled-style poll_feed task is counted from its returned outcome.
        from worker.celery_app import app as celery_app

        with session_scope() as session:
            feed_id = store.get_feed_by_name(session, "local").id  # type: ignore[union-attr]
        with celery_app.connection_for_write(url=broker_url) as connection:
            celery_app.send_task("worker.tasks.poll_feed", args=(feed_id,), connection=connection)

        def polled_three_times() -> str:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            return text if _metric(text, "ingest_feed_polls_total") == 3 else ""

        text = wait_until(polled_three_times, timeout=30, what="the third poll counted")
        assert _metric(text, "ingest_fetches_total", kind="feed") == 3
        assert _metric(text, "ingest_fetches_total", kind="feed", status="error") == 0
    events = celery.events()
    stored = events.named("article_stored")
    assert stored, celery.log()[-3000:]
    assert all(e["task_id"] and e["url"].startswith("http://127.0.0.1") for e in stored)
    assert any(e.get("crawl_request_id") for e in events)
    with session_scope() as session:
        assert store.crawl_request_progress(session, since["id"]).status == "done"  # type: ignore[union-attr]
