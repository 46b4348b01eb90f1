"""Two Celery worker processes store syndicated copies of one story at the same time:
they must end in one story, with one article row per distinct URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from tests.integration.helpers import processed, rss, running_celery, wait_until, worker_env
from tests.support.factories import add_feed
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Article, Story

pytestmark = pytest.mark.integration

COPIES = 12


def _variant(paragraphs: list[str], n: int, title: str) -> str:
    """Syndicated copy n: the outlet's own boilerplate, some trimmed at the end."""
    kept = paragraphs if n % 3 else paragraphs[: max(len(paragraphs) - 2, 3)]
    body = "\n".join(f"<p>{p}</p>" for p in kept)
    return (
        f"<html lang='en'><head><title>{title} | Outlet {n}</title></head><body>"
        f"<nav><a href='/'>Outlet {n} home</a> <a href='/world'>World</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        f"<footer>© Outlet {n}. Sign up for the Outlet {n} morning briefing.</footer>"
        "</body></html>"
    )


def test_racing_workers_put_copies_in_one_story(
    broker_url: str, database_url: str, web: LocalWeb, shared_data: Path, tmp_path: Path
) -> None:
    truth = json.loads((shared_data / "fundus" / "fundus_ground_truth.json").read_text())
    record = truth["ca/GlobalNews_2026_05_24"]
    paragraphs = [p for p in record["articleBody"].split("\n") if p.strip()]
    items = []
    for n in range(COPIES):
        title = record["title"] if n % 2 else f"{record['title']} - Outlet {n}"
        path = f"outlet{n}/story-{n}.html"
        web.add_page(path, _variant(paragraphs, n, title), "text/html; charset=utf-8")
        items.append({"title": title, "link": web.url(path), "guid": f"copy-{n}"})
    web.add_page("feed.xml", rss(items))
    add_feed(name="wire", url=web.url("feed.xml"))

    env = worker_env(database_url, broker_url)
    with running_celery(env, tmp_path, workers=2, beat=True):
        wait_until(lambda: processed(COPIES), timeout=120, what="all copies processed")

    with session_scope() as session:
        articles = session.exec(select(Article)).all()
        stories = session.exec(select(Story)).all()
    assert len(articles) == COPIES
    assert len({a.canonical_url for a in articles}) == COPIES
    assert len(stories) == 1, [(s.id, s.title, s.article_count) for s in stories]
    story = stories[0]
    assert story.article_count == COPIES
    # Every copy is served from 127.0.0.1 here, so they count as one source;
    # test_store.py checks that copies from distinct sites are counted apart.
    assert story.source_count == 1
    assert story.is_ukraine_security
    assert sum(1 for a in articles if a.dedup_reason) == COPIES - 1
