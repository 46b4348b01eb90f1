"""The bounds of the path and query parameters, shared by the routers.

Each bound stops a value the database cannot take before it reaches the driver, where
it would fail as a 500: an id past 32 bits (``MAX_ID``: PostgreSQL's ``SERIAL``), a
change-feed position past 64, a NUL (``TEXT``). Strings get a length the longest real
value fits well inside, so a caller cannot make one request carry megabytes through a
filter. Past a bound the answer is FastAPI's 422 naming the parameter, and
``/openapi.json`` publishes the bound.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from ..schemas import TEXT, Timestamp
from ..search import MAX_QUERY_CHARS
from .cursors import MAX_ID

RowId = Annotated[int, Path(ge=0, le=MAX_ID, description="The row's id.")]
"""An id in a path: a 32-bit integer, as PostgreSQL stores it."""

MAX_POSITION = 2**63 - 1
"""The largest change-feed position (``change_log.position`` is a 64-bit integer)."""

Cursor = Annotated[
    str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")
]
Topic = Annotated[
    str | None,
    Query(max_length=100, pattern=TEXT, description="A topic (docs/classifier.md)."),
]
Language = Annotated[
    str | None, Query(max_length=16, pattern=TEXT, description="Language code, e.g. en.")
]
FeedName = Annotated[str | None, Query(max_length=200, pattern=TEXT, description="Feed name.")]
Search = Annotated[
    str | None,
    Query(
        # Published, not enforced here: the search refuses a longer one itself, with 400
        # and the reason (and ignores a NUL), as it always has.
        json_schema_extra={"maxLength": MAX_QUERY_CHARS},
        description='Full-text search: words (all must appear), "a phrase", -excluded, '
        "OR between alternatives. Blank: no search.",
    ),
]

KINDS = r"^\s*((article|story|feed)\s*)?(,\s*((article|story|feed)\s*)?)*$"
"""Kinds of the change feed, comma-separated: what :func:`worker.changefeed.parse_kinds`
accepts, as the pattern the schema publishes (parse_kinds refuses the rest with 400)."""

__all__ = [
    "KINDS",
    "MAX_ID",
    "MAX_POSITION",
    "Cursor",
    "FeedName",
    "Language",
    "RowId",
    "Search",
    "Timestamp",
    "Topic",
]
