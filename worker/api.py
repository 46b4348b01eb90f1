"""The read API for downstream apps (FastAPI): articles, stories, feeds, health, metrics.

Reads go through :mod:`worker.store`; writes (re-crawl, feed changes) are the
same operations as the CLI's and need the bearer token ``INGEST_API_TOKEN``.
With no token configured the write endpoints answer 503 (disabled) rather
than being open. Lists use opaque keyset cursors, so paging through articles
while new ones arrive neither repeats nor skips rows.

Built by :func:`create_app` (never at import time), served by ``ingest api``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from . import __version__, store
from .db import session_scope
from .schemas import (
    ArticleOut,
    ArticlePage,
    CrawlRequestOut,
    FeedIn,
    FeedOut,
    Health,
    Label,
    RecrawlIn,
    StoryDetail,
    StoryOut,
    StoryPage,
)
from .settings import Settings, get_settings

MAX_PAGE = 200


def _utc(value: datetime | None) -> datetime | None:
    """Query times without a zone are UTC, like every stored timestamp."""
    return None if value is None else store.as_utc(value)


# --- cursors ------------------------------------------------------------------------


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor") from exc
    if not isinstance(parts, list):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor")
    return parts


def _article_after(cursor: str, sort: str) -> tuple[datetime | None, int]:
    parts = decode_cursor(cursor)
    try:
        kind, key, last_id = parts
        if kind != sort:
            raise ValueError("cursor was made for another sort order")
        return (datetime.fromisoformat(key) if key else None), int(last_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid cursor: {exc}") from exc


# --- the app ------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    from . import metrics

    app = FastAPI(
        title="ukraine-security-ingest read API",
        version=__version__,
        description="Articles and stories about Ukraine security, as stored by the ingest "
        "worker. Schema: docs/schema.md. Write endpoints need `Authorization: Bearer <token>`.",
    )
    bearer = HTTPBearer(auto_error=False, description="INGEST_API_TOKEN")

    def _check_token(credentials: HTTPAuthorizationCredentials | None) -> None:
        if not settings.api_token:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "disabled: the server has no INGEST_API_TOKEN configured",
            )
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "bearer token required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), settings.api_token.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")

    # Depends() as the default, not in an Annotated alias: annotations are strings
    # here (PEP 563) and FastAPI resolves them in the module, not in this closure.
    def require_read(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        if settings.api_read_requires_token:
            _check_token(credentials)

    def require_write(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        _check_token(credentials)

    read = [Depends(require_read)]
    write = [Depends(require_write)]

    @app.middleware("http")
    async def _observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.API_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.API_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    @app.get("/articles", response_model=ArticlePage, dependencies=read, tags=["read"])
    def list_articles(
        label: Label | None = None,
        topic: str | None = None,
        since: Annotated[
            datetime | None, Query(description="Published (or stored) at or after.")
        ] = None,
        until: Annotated[datetime | None, Query(description="Published before.")] = None,
        feed: Annotated[str | None, Query(description="Feed name.")] = None,
        language: str | None = None,
        story_id: int | None = None,
        sort: Literal["published", "id"] = "published",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: str | None = None,
        include_body: bool = False,
    ) -> ArticlePage:
        """Articles, newest first; ``sort=published`` (publication time, or storage
        time when the article has none) or ``sort=id`` (storage order)."""
        after = _article_after(cursor, sort) if cursor else None
        where = store.ArticleFilter(
            label=label,
            topic=topic,
            since=_utc(since),
            until=_utc(until),
            feed=feed,
            language=language,
            story_id=story_id,
        )
        with session_scope() as session:
            rows = store.list_articles(session, where=where, limit=limit + 1, sort=sort,
                                       after=after)  # fmt: skip
            names = store.feed_names(session)
            items = [ArticleOut.of(a, names, body=include_body) for a, _ in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last, key = rows[limit - 1]
            next_cursor = encode_cursor(sort, key.isoformat() if key else None, last.id)
        return ArticlePage(items=items, next_cursor=next_cursor)

    @app.get("/articles/{article_id}", response_model=ArticleOut, dependencies=read,
             tags=["read"])  # fmt: skip
    def get_article(article_id: int) -> ArticleOut:
        """One article with its full extracted body."""
        from .models import Article

        with session_scope() as session:
            article = session.get(Article, article_id)
            if article is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such article")
            return ArticleOut.of(article, store.feed_names(session), body=True)

    @app.get("/stories", response_model=StoryPage, dependencies=read, tags=["read"])
    def list_stories(
        label: Label | None = None,
        topic: str | None = None,
        since: Annotated[datetime | None, Query(description="Last seen at or after.")] = None,
        until: Annotated[datetime | None, Query(description="First seen before.")] = None,
        min_articles: Annotated[int, Query(ge=1)] = 1,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: str | None = None,
    ) -> StoryPage:
        """Stories (an event reported by one or more articles), newest first."""
        before_id = None
        if cursor:
            parts = decode_cursor(cursor)
            if len(parts) != 2 or parts[0] != "story" or not isinstance(parts[1], int):
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor")
            before_id = parts[1]
        with session_scope() as session:
            found = store.list_stories(
                session,
                label=label,
                topic=topic,
                since=_utc(since),
                until=_utc(until),
                min_articles=min_articles,
                limit=limit + 1,
                before_id=before_id,
            )
            items = [StoryOut.of(s) for s in found[:limit]]
        next_cursor = encode_cursor("story", items[-1].id) if len(found) > limit else None
        return StoryPage(items=items, next_cursor=next_cursor)

    @app.get("/stories/{story_id}", response_model=StoryDetail, dependencies=read,
             tags=["read"])  # fmt: skip
    def get_story(story_id: int) -> StoryDetail:
        """One story with all its articles (without bodies)."""
        from .models import Story

        with session_scope() as session:
            story = session.get(Story, story_id)
            if story is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such story")
            names = store.feed_names(session)
            articles = [
                ArticleOut.of(a, names, body=False) for a in store.story_articles(session, story_id)
            ]
            return StoryDetail.model_validate(
                {**StoryOut.of(story).model_dump(), "articles": articles}
            )

    @app.get("/feeds", response_model=list[FeedOut], dependencies=read, tags=["read"])
    def list_feeds() -> list[FeedOut]:
        """Every feed with its health."""
        with session_scope() as session:
            return [FeedOut.model_validate(f) for f in store.list_feeds(session)]

    @app.get("/crawl-requests/{request_id}", response_model=CrawlRequestOut,
             dependencies=read, tags=["read"])  # fmt: skip
    def get_crawl_request(request_id: int) -> CrawlRequestOut:
        """A re-crawl request and how far it got."""
        with session_scope() as session:
            request = store.crawl_request_progress(session, request_id)
            if request is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such crawl request")
            return CrawlRequestOut.model_validate(request)

    @app.post("/recrawl", response_model=CrawlRequestOut, status_code=status.HTTP_202_ACCEPTED,
              dependencies=write, tags=["write"])  # fmt: skip
    def recrawl(body: RecrawlIn) -> CrawlRequestOut:
        """Enqueue a re-crawl of a feed, one URL, or everything seen since a time."""
        from .broker import BrokerUnavailableError, check_broker, submit_crawl_request

        kind, target = "since", ""
        if body.feed is not None:
            kind, target = "feed", body.feed
            with session_scope() as session:
                if store.get_feed_by_name(session, body.feed) is None:
                    raise HTTPException(status.HTTP_404_NOT_FOUND, "no such feed")
        elif body.url is not None:
            kind, target = "url", body.url
        elif body.since is not None:
            target = store.as_utc(body.since).isoformat()
        try:
            check_broker(timeout=2.0)
        except BrokerUnavailableError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        request_id = submit_crawl_request(
            kind=kind, target=target, force=body.force, requested_by=body.requested_by
        )
        return get_crawl_request(request_id)

    @app.post("/feeds", response_model=FeedOut, dependencies=write, tags=["write"])
    def put_feed(body: FeedIn, response: Response) -> FeedOut:
        """Add a feed, or update the feed of that name."""
        with session_scope() as session:
            feed, created = store.upsert_feed(
                session,
                name=body.name,
                url=body.url,
                tags=body.tags,
                language=body.language,
                poll_interval_seconds=body.poll_interval_seconds,
                enabled=body.enabled,
            )
            response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return FeedOut.model_validate(feed)

    @app.post("/feeds/{name}/enable", response_model=FeedOut, dependencies=write,
              tags=["write"])  # fmt: skip
    def enable_feed(name: str) -> FeedOut:
        """Enable a feed and clear its failure state."""
        with session_scope() as session:
            feed = store.enable_feed(session, name)
            if feed is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such feed")
            return FeedOut.model_validate(feed)

    @app.post("/feeds/{name}/disable", response_model=FeedOut, dependencies=write,
              tags=["write"])  # fmt: skip
    def disable_feed(name: str) -> FeedOut:
        """Stop polling a feed."""
        with session_scope() as session:
            feed = store.disable_feed(session, name)
            if feed is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such feed")
            return FeedOut.model_validate(feed)

    @app.delete("/feeds/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=write,
                tags=["write"])  # fmt: skip
    def delete_feed(name: str) -> Response:
        """Delete a feed with its polls and entries (its articles stay)."""
        with session_scope() as session:
            if not store.remove_feed(session, name):
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such feed")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get("/health", response_model=Health, tags=["ops"])
    def health(response: Response) -> Health:
        """200 when the database and the broker answer, else 503 with what is down."""
        from .operations import health

        report = health()
        if report.status != "ok":
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return report

    db_registry = CollectorRegistry()
    db_registry.register(metrics.DatabaseCollector(_totals))

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus text format: request counters and live database gauges."""
        body, content_type = metrics.render(metrics.collecting_registry(), db_registry)
        return Response(content=body, media_type=content_type)

    return app


def _totals() -> dict[str, Any]:
    with session_scope() as session:
        return store.totals(session)
