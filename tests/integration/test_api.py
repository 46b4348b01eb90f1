"""The read API over a real database (SQLite and PostgreSQL), through FastAPI's
TestClient and, once, as the real `ingest api` server process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.integration.helpers import wait_until
from tests.support import services
from tests.support.factories import add_feed, add_listed_article
from tests.support.logs import Events, LogEvents
from worker import store
from worker.db import session_scope
from worker.models import CrawlRequest

pytestmark = pytest.mark.integration

TOKEN = "s3cret-test-token"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def seeded(database_url: str) -> dict[str, Any]:
    """Two feeds and ten articles with known labels, topics, languages and dates."""
    ids = {name: add_feed(name=name) for name in ("kyiv", "other")}
    articles = [
        add_listed_article(
            n=n,
            feed_id=ids["kyiv"] if n % 2 == 0 else ids["other"],
            positive=n < 6,
            topics=["battlefield", "military_aid"] if n < 3 else ["sanctions"] if n < 6 else [],
            language="uk" if n == 4 else "en",
            published_at=None if n == 9 else T0 + timedelta(hours=n),
        )
        for n in range(10)
    ]
    return {"feeds": ids, "articles": articles}


@pytest.fixture
def client(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from worker.api import create_app
    from worker.settings import reset_settings

    monkeypatch.setenv("INGEST_API_TOKEN", TOKEN)
    reset_settings()
    with TestClient(create_app()) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def titles(page: dict[str, Any]) -> list[str]:
    return [item["title"] for item in page["items"]]


def test_article_filters(client: TestClient, seeded: dict[str, Any]) -> None:
    """Label, topic (JSON on SQLite, JSONB on PostgreSQL), feed, language and time filters."""
    get = lambda **params: client.get("/articles", params=params).json()  # noqa: E731
    assert len(get(label="ukraine-security")["items"]) == 6
    assert len(get(label="other")["items"]) == 4
    assert sorted(titles(get(topic="battlefield"))) == ["article 0", "article 1", "article 2"]
    assert len(get(topic="sanctions", label="ukraine-security")["items"]) == 3
    assert get(topic="nuclear_safety")["items"] == []
    assert {i["feed"] for i in get(feed="kyiv")["items"]} == {"kyiv"}
    assert titles(get(language="uk")) == ["article 4"]
    window = get(
        since=(T0 + timedelta(hours=2)).isoformat(), until=(T0 + timedelta(hours=5)).isoformat()
    )
    assert titles(window) == ["article 4", "article 3", "article 2"]
    first = get(limit=1)["items"][0]
    assert first["body"] is None
    assert first["label"] in ("ukraine-security", "other")
    full = client.get(f"/articles/{first['id']}").json()
    assert full["body"].startswith("body of article")
    assert client.get("/articles/999999").status_code == 404
    assert client.get("/articles", params={"label": "maybe"}).status_code == 422


@pytest.mark.parametrize("sort", ["published", "id"])
def test_cursor_pages_are_stable_under_inserts(
    client: TestClient, seeded: dict[str, Any], sort: str
) -> None:
    """Paging while new articles arrive neither repeats nor skips the rows that were there."""
    seen: list[int] = []
    page = client.get("/articles", params={"limit": 3, "sort": sort}).json()
    seen += [i["id"] for i in page["items"]]
    # A newer article arrives between page requests: it must not shift later pages.
    add_listed_article(n=100, published_at=T0 + timedelta(days=9))
    while page["next_cursor"]:
        page = client.get(
            "/articles", params={"limit": 3, "sort": sort, "cursor": page["next_cursor"]}
        ).json()
        seen += [i["id"] for i in page["items"]]
    assert sorted(seen) == sorted(seeded["articles"])
    assert len(seen) == len(set(seen))
    assert client.get("/articles", params={"cursor": "not-a-cursor!"}).status_code == 400


def test_stories(client: TestClient, seeded: dict[str, Any]) -> None:
    stories = client.get("/stories", params={"label": "ukraine-security", "limit": 4}).json()
    assert len(stories["items"]) == 4
    rest = client.get("/stories", params={"label": "ukraine-security",
                                          "cursor": stories["next_cursor"]}).json()  # fmt: skip
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None
    with_topic = client.get("/stories", params={"topic": "battlefield"}).json()["items"]
    assert len(with_topic) == 3
    detail = client.get(f"/stories/{with_topic[0]['id']}").json()
    assert [a["title"] for a in detail["articles"]] == [
        with_topic[0]["title"].replace("story", "article")
    ]
    assert client.get("/stories/424242").status_code == 404


def test_feeds_listing(client: TestClient, seeded: dict[str, Any]) -> None:
    feeds = client.get("/feeds").json()
    assert [f["name"] for f in feeds] == ["kyiv", "other"]
    assert feeds[0]["state"] == "healthy"


def test_write_endpoints_need_the_token(client: TestClient, seeded: dict[str, Any]) -> None:
    body = {"name": "new-feed", "url": "https://new.example/rss"}
    missing = client.post("/feeds", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (
        client.post("/feeds", json=body, headers={"Authorization": "Bearer nope"}).status_code
        == 403
    )
    assert client.post("/feeds/kyiv/disable").status_code == 401
    assert client.delete("/feeds/kyiv").status_code == 401
    assert client.post("/recrawl", json={"feed": "kyiv"}).status_code == 401

    created = client.post("/feeds", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert client.post("/feeds", json=body, headers=AUTH).status_code == 200
    assert client.post("/feeds", json={"name": "x", "url": "ftp://x.example/rss"},
                       headers=AUTH).status_code == 422  # fmt: skip
    assert client.post("/feeds/kyiv/disable", headers=AUTH).json()["enabled"] is False
    enabled = client.post("/feeds/kyiv/enable", headers=AUTH).json()
    assert enabled["enabled"] is True
    assert enabled["state"] == "healthy"
    assert client.post("/feeds/nope/enable", headers=AUTH).status_code == 404
    assert client.delete("/feeds/new-feed", headers=AUTH).status_code == 204
    assert [f["name"] for f in client.get("/feeds").json()] == ["kyiv", "other"]


def test_writes_disabled_without_configured_token(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.api import create_app
    from worker.settings import reset_settings

    monkeypatch.delenv("INGEST_API_TOKEN", raising=False)
    reset_settings()
    with TestClient(create_app()) as client:
        response = client.post("/feeds", json={"name": "a", "url": "https://a.example/rss"},
                               headers=AUTH)  # fmt: skip
        assert response.status_code == 503
        assert "INGEST_API_TOKEN" in response.json()["detail"]
        assert client.get("/articles").status_code == 200


def test_reads_can_require_the_token(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.api import create_app
    from worker.settings import reset_settings

    monkeypatch.setenv("INGEST_API_TOKEN", TOKEN)
    monkeypatch.setenv("INGEST_API_READ_REQUIRES_TOKEN", "true")
    reset_settings()
    with TestClient(create_app()) as client:
        assert client.get("/articles").status_code == 401
        assert client.get("/feeds", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert client.get("/articles", headers=AUTH).status_code == 200
        assert client.get("/health").status_code in (200, 503)  # never behind the token


def test_openapi_schema(client: TestClient) -> None:
    """The published contract: paths, parameters, models and the bearer scheme."""
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/articles", "/articles/{article_id}", "/stories", "/stories/{story_id}",
                 "/feeds", "/health", "/metrics", "/recrawl", "/crawl-requests/{request_id}",
                 "/feeds/{name}/enable", "/feeds/{name}/disable", "/feeds/{name}",
                 "/changes"):  # fmt: skip
        assert path in paths, path
    params = {p["name"] for p in paths["/articles"]["get"]["parameters"]}
    assert {"label", "topic", "since", "until", "feed", "language", "cursor", "limit"} <= params
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert paths["/recrawl"]["post"]["security"] == [{"HTTPBearer": []}]
    article = schema["components"]["schemas"]["ArticleOut"]["properties"]
    assert {"canonical_url", "published_at", "is_ukraine_security", "topics", "story_id"} <= set(
        article
    )
    assert "next_cursor" in schema["components"]["schemas"]["ArticlePage"]["properties"]
    change = schema["components"]["schemas"]["ChangeOut"]["properties"]
    assert {"position", "kind", "id", "op", "changed_at", "row"} <= set(change)
    assert {"changes", "next", "head"} <= set(
        schema["components"]["schemas"]["ChangePage"]["properties"]
    )
    assert "410" in paths["/changes"]["get"]["responses"]


def test_recrawl_health_and_metrics(
    client: TestClient,
    seeded: dict[str, Any],
    broker_url: str,
    monkeypatch: pytest.MonkeyPatch,
    log_events: LogEvents,
) -> None:
    """With the broker up: /health is ok and POST /recrawl records and enqueues a request."""
    import redis

    from worker.settings import reset_settings

    assert client.get("/health").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    response = client.post("/recrawl", json={"feed": "kyiv", "force": True,
                                             "requested_by": "alice"}, headers=AUTH)  # fmt: skip
    assert response.status_code == 202, response.text
    request = response.json()
    assert (request["kind"], request["target"], request["force"]) == ("feed", "kyiv", True)
    with session_scope() as session:
        row = session.get(CrawlRequest, request["id"])
        assert row is not None
        assert row.requested_by == "alice"
    # The message is on the broker for the workers (the default Celery queue).
    assert redis.Redis.from_url(broker_url).llen("celery") == 1
    assert client.post("/recrawl", json={"feed": "nope"}, headers=AUTH).status_code == 404
    assert client.post("/recrawl", json={"url": "not a url"}, headers=AUTH).status_code == 422
    assert client.post("/recrawl", json={}, headers=AUTH).status_code == 422
    queued = client.get(f"/crawl-requests/{request['id']}").json()
    assert (queued["status"], queued["error"]) == ("queued", None)
    # A request that fails says why (the worker records the reason on the row).
    with session_scope() as session:
        store.fail_crawl_request(session, request_id=request["id"], reason="HTTP 500 [server]")
    failed = client.get(f"/crawl-requests/{request['id']}").json()
    assert (failed["status"], failed["error"]) == ("failed", "HTTP 500 [server]")
    assert failed["finished_at"] is not None
    log_events().expect(
        "crawl_request_failed", crawl_request_id=request["id"], reason="HTTP 500 [server]"
    )

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'ingest_db_articles{label="ukraine-security"} 6.0' in text
    assert 'ingest_db_articles{label="other"} 4.0' in text
    assert 'ingest_api_requests_total{method="POST",route="/recrawl",status="202"}' in text

    monkeypatch.setenv("INGEST_BROKER_URL", f"redis://127.0.0.1:{services.free_port()}/0")
    reset_settings()
    down = client.get("/health")
    assert down.status_code == 503
    assert down.json()["broker"].startswith("error")
    assert client.post("/recrawl", json={"feed": "kyiv"}, headers=AUTH).status_code == 503


def test_ingest_api_serves_over_http(sqlite_url: str, broker_url: str) -> None:
    """`ingest api` (the container's command) serves health, data and metrics."""
    port = services.free_port()
    env = {**os.environ, "INGEST_DATABASE_URL": sqlite_url, "INGEST_BROKER_URL": broker_url}
    add_listed_article(n=1, topics=["battlefield"], published_at=T0)
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        services.wait_for_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        health = wait_until(lambda: httpx.get(f"{base}/health", timeout=5), timeout=20)
        assert health.status_code == 200, health.text
        items = httpx.get(f"{base}/articles", params={"topic": "battlefield"}, timeout=5).json()
        assert [i["title"] for i in items["items"]] == ["article 1"]
        assert "ingest_db_stories 1.0" in httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode(errors="replace")
    # uvicorn shuts down cleanly, then re-raises SIGTERM as its exit status.
    assert process.returncode in (0, -15), output[-2000:]
    events = Events.parse(output)
    events.expect("Application startup complete.")
    assert all({"event", "level", "timestamp"} <= set(event) for event in events)
