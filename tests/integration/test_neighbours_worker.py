"""INGEST_CLASSIFIER=neighbours end to end: a real `ingest worker` (prefork pool, the
embedding model loaded before the fork) classifies a crawled article with the neighbour
method, and `ingest reclassify` moves older articles to its version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import select
from typer.testing import CliRunner

from tests.integration.helpers import rss, serve_seed
from tests.support import services
from tests.unit.test_neighbours import extra  # noqa: F401 (fixture)
from worker.classify import NEIGHBOURS_VERSION
from worker.cli import app
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("extra")]


def ingest_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_worker_classifies_and_reclassifies_with_neighbours(
    sqlite_url: str,
    tmp_path: Path,
    redis_server: services.RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.settings import reset_settings

    url = sqlite_url
    broker = redis_server.url.replace("/0", "/5")
    redis.Redis.from_url(broker).flushdb()
    env = {
        "INGEST_DATABASE_URL": url,
        "INGEST_BROKER_URL": broker,
        "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "INGEST_CLASSIFIER": "neighbours",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    with LocalWeb() as web:
        serve_seed(web)
        web.add_page("feed.xml", rss([
            {"title": "Seed", "link": web.url("seed-article.html"), "guid": "seed"},
        ]))  # fmt: skip
        ingest_json("feeds", "add", "local", web.url("feed.xml"))
        worker = services.start_celery("worker", env, workdir=tmp_path)
        try:
            crawl = ingest_json("recrawl", "--feed", "local", "--timeout", "180")
            assert (crawl["status"], crawl["done"]) == ("done", 1), (crawl, worker.log())
            with session_scope() as session:
                article = session.exec(select(Article)).one()
                assert article.classifier_version == NEIGHBOURS_VERSION
                assert article.is_ukraine_security
                assert {"security_guarantees", "peacekeeping_force"} <= set(article.topics)
                assert len(article.evidence["neighbours"]) == 3
                session.execute(sa.update(Article).values(classifier_version="hybrid-old"))
            done = ingest_json("reclassify", "--timeout", "180")
            assert (done["articles"], done["done"], done["finished"]) == (1, 1, True)
            assert done["version"] == NEIGHBOURS_VERSION
            with session_scope() as session:
                assert session.exec(select(Article.classifier_version)).one() == NEIGHBOURS_VERSION
        finally:
            worker.stop()
