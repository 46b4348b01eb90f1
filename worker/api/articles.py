"""``/articles``: stored articles, filtered and paged by cursor."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from .. import operations, store
from ..schemas import ArticleOut, ArticlePage, Label
from .cursors import MAX_PAGE, article_after, article_cursor
from .params import MAX_ID, Cursor, FeedName, Language, RowId, Search, Timestamp, Topic
from .responses import BAD_INPUT, NOT_FOUND

reads = APIRouter()


@reads.get("/articles", response_model=ArticlePage, responses=BAD_INPUT)
def list_articles(
    label: Label | None = None,
    topic: Topic = None,
    since: Annotated[
        Timestamp | None, Query(description="Published (or stored) at or after.")
    ] = None,
    until: Annotated[Timestamp | None, Query(description="Published before.")] = None,
    feed: FeedName = None,
    language: Language = None,
    story_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    q: Search = None,
    sort: Annotated[
        Literal["relevance", "published", "id"] | None,
        Query(description="Default: relevance with q, else published."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Cursor = None,
    include_body: bool = False,
) -> ArticlePage:
    """Articles, newest first; ``sort=published`` (publication time, or storage
    time when the article has none) or ``sort=id`` (storage order). With ``q``, only
    the articles the search finds, most relevant first unless ``sort`` says otherwise."""
    order = operations.article_order(sort, q)
    where = store.ArticleFilter(
        label=label,
        topic=topic,
        since=since,
        until=until,
        feed=feed,
        language=language,
        story_id=story_id,
        query=q,
    )
    items, next_key = operations.list_articles(
        where,
        limit=limit,
        sort=order,
        after=article_after(cursor, order) if cursor else None,
        include_body=include_body,
    )
    next_cursor = article_cursor(order, next_key) if next_key is not None else None
    return ArticlePage(items=items, next_cursor=next_cursor)


@reads.get("/articles/{article_id}", response_model=ArticleOut, responses=NOT_FOUND)
def get_article(article_id: RowId) -> ArticleOut:
    """One article with its full extracted body."""
    return operations.get_article(article_id)
