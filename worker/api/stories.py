"""``/stories``: events reported by one or more articles, paged by cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from .. import operations
from ..schemas import Label, StoryDetail, StoryPage
from .cursors import MAX_PAGE, story_before, story_cursor

reads = APIRouter()


@reads.get("/stories", response_model=StoryPage)
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
    where = operations.StoryFilter(
        label=label, topic=topic, since=since, until=until, min_articles=min_articles
    )
    items, next_id = operations.list_stories(
        where, limit=limit, before_id=story_before(cursor) if cursor else None
    )
    return StoryPage(
        items=items, next_cursor=story_cursor(next_id) if next_id is not None else None
    )


@reads.get("/stories/{story_id}", response_model=StoryDetail)
def get_story(story_id: int) -> StoryDetail:
    """One story with all its articles (without bodies)."""
    return operations.get_story(story_id)
