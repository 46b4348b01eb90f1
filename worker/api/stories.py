"""``/stories``: events reported by one or more articles, paged by cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from .. import operations
from ..schemas import Label, StoryDetail, StoryPage
from .cursors import MAX_PAGE, story_before, story_cursor
from .params import MAX_ID, Cursor, RowId, Timestamp, Topic
from .responses import BAD_INPUT, NOT_FOUND

reads = APIRouter()


@reads.get("/stories", response_model=StoryPage, responses=BAD_INPUT)
def list_stories(
    label: Label | None = None,
    topic: Topic = None,
    since: Annotated[Timestamp | None, Query(description="Last seen at or after.")] = None,
    until: Annotated[Timestamp | None, Query(description="First seen before.")] = None,
    min_articles: Annotated[int, Query(ge=1, le=MAX_ID)] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> StoryPage:
    """Stories (an event reported by one or more articles), newest first."""
    where = operations.StoryFilter(
        label=label, topic=topic, since=since, until=until, min_articles=min_articles
    )
    items, next_id = operations.list_stories(
        where, limit=limit, before_id=story_before(cursor) if cursor else None
    )
    return StoryPage(
        items=items, next_cursor=story_cursor(next_id) if next_id is not None else None
    )


@reads.get("/stories/{story_id}", response_model=StoryDetail, responses=NOT_FOUND)
def get_story(story_id: RowId) -> StoryDetail:
    """One story with all its articles (without bodies)."""
    return operations.get_story(story_id)
