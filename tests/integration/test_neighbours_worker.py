"""INGEST_CLASSIFIER=neighbours end to end: a real `ingest worker` (prefork pool, the
embedding model loaded before the fork) classifies a crawled article with the neighbour
method, and `ingest reclassify` moves older articles to its version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select
from typer.testing import CliRunner

from tests.integration.helpers import rss, running_celery, serve_seed, worker_env
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
    broker_url: str,
    web: LocalWeb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.settings import reset_settings

    env = worker_env(sqlite_url, broker_url, INGEST_CLASSIFIER="neighbours")
    for name, value in env.items():  # the CLI in this process reclassifies with it too
        monkeypatch.setenv(name, value)
    reset_settings()
    serve_seed(web)
    web.add_page("feed.xml", rss([
        {"title": "Seed", "link": web.url("seed-article.html"), "guid": "seed"},
    ]))  # fmt: skip
    ingest_json("feeds", "add", "local", web.url("feed.xml"))
    with running_celery(env, tmp_path) as celery:
        crawl = ingest_json("recrawl", "--feed", "local", "--timeout", "180")
        assert (crawl["status"], crawl["done"]) == ("done", 1), (crawl, celery.log())
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
