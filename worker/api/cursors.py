"""Opaque keyset cursors: where the last page ended, so the next one starts there.

A cursor is the page's last key (sort time and id, or a story id) as URL-safe
base64 JSON. Paging by key rather than OFFSET means articles that arrive while a
client pages neither repeat nor shift rows into a page it already read.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any

from ..operations import ArticleKey, BadInputError

MAX_PAGE = 200
"""The most rows one page holds (``?limit=``)."""

MAX_ID = 2**31 - 1
"""The largest row id: ids are 32-bit integers on PostgreSQL (``SERIAL``), and a larger
one (in a tampered cursor, a path, a filter) must not reach the driver, which fails on it
as a 500 ("integer out of range")."""


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadInputError("invalid cursor") from exc
    if not isinstance(parts, list):
        raise BadInputError("invalid cursor")
    return parts


def article_cursor(sort: str, key: ArticleKey) -> str:
    when, last_id = key
    if isinstance(when, datetime):
        return encode_cursor(sort, when.isoformat(), last_id)
    return encode_cursor(sort, when, last_id)  # a rank (relevance), or no time


def article_after(cursor: str, sort: str) -> ArticleKey:
    """The key an article cursor holds; it must have been made for the same sort order.

    Every part is checked, not only parsed: a cursor is client input, and a value the
    database cannot compare (an id past :data:`MAX_ID`, a NaN rank, a time that leaves
    the calendar in UTC) would otherwise fail in the driver as a 500.
    """
    parts = decode_cursor(cursor)
    try:
        kind, key, last_id = parts
        if kind != sort:
            raise ValueError("cursor was made for another sort order")
        if not _is_id(last_id):
            raise ValueError(f"id is not an integer from 0 to {MAX_ID}")
        if sort == "relevance":
            if isinstance(key, bool) or not isinstance(key, int | float):
                raise ValueError("rank is not a number")
            if not math.isfinite(key):
                raise ValueError("rank is not finite")
            return float(key), last_id
        if key is None:
            return None, last_id
        when = datetime.fromisoformat(key)
        return (when if when.tzinfo is None else when.astimezone(UTC)), last_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadInputError(f"invalid cursor: {exc}") from exc


def story_cursor(story_id: int) -> str:
    return encode_cursor("story", story_id)


def story_before(cursor: str) -> int:
    """The story id a story cursor holds; checked as an article cursor's id is."""
    parts = decode_cursor(cursor)
    if len(parts) != 2 or parts[0] != "story" or not _is_id(parts[1]):
        raise BadInputError("invalid cursor")
    story_id: int = parts[1]
    return story_id


def _is_id(value: Any) -> bool:
    """An id the database can compare: an int (not a bool, which JSON's true decodes to)
    from 0 to :data:`MAX_ID`."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID
