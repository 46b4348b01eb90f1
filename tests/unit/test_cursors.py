"""Article cursors: a cursor is client input, so any tampered one is a BadInputError (a 400),
and whatever one yields can be bound as a query parameter by either database."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from worker.api.cursors import (
    MAX_ID,
    article_after,
    article_cursor,
    encode_cursor,
    story_before,
    story_cursor,
)
from worker.models import UTCDateTime
from worker.operations import BadInputError

SORTS = ["relevance", "published", "id"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
    | st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]),
    lambda children: st.lists(children, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("relevance", (0.6518329381942749, 7)),
        ("relevance", (1.9771965124077802e-06, 1)),
        ("published", (datetime(2026, 5, 1, 12, tzinfo=UTC), 3)),
        ("published", (None, 3)),
        ("id", (datetime(2026, 5, 1, 12, tzinfo=UTC), 9)),
    ],
)
def test_round_trip(sort: str, key: tuple[Any, int]) -> None:
    """A cursor gives back exactly its key: a rank must compare equal to itself again."""
    assert article_after(article_cursor(sort, key), sort) == key


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(SORTS),
    st.one_of(
        st.lists(json_values, max_size=4),
        st.tuples(st.sampled_from(SORTS), json_values, json_values).map(list),
    ),
)
def test_any_cursor_is_a_bindable_key_or_refused(sort: str, parts: list[Any]) -> None:
    try:
        when, last_id = article_after(encode_cursor(*parts), sort)
    except BadInputError:
        return
    assert isinstance(last_id, int)
    assert not isinstance(last_id, bool)
    assert 0 <= last_id <= MAX_ID
    if sort == "relevance":
        assert isinstance(when, float)
        assert math.isfinite(when)
    elif when is not None:
        assert isinstance(when, datetime)
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            UTCDateTime().process_bind_param(when, dialect)


@pytest.mark.parametrize("raw", [b"not json", b'{"a": 1}', b"[1, 2", b"\xff\xfe", b""])
def test_garbage_is_refused(raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(BadInputError):
        article_after(cursor, "relevance")
    with pytest.raises(BadInputError):
        article_after("%%%" + cursor, "published")


def test_cursor_of_another_order_is_refused() -> None:
    cursor = encode_cursor("published", datetime(2026, 1, 1, tzinfo=UTC).isoformat(), 5)
    with pytest.raises(BadInputError, match="another sort order"):
        article_after(cursor, "relevance")
    assert json.loads(base64.urlsafe_b64decode(cursor + "=="))[0] == "published"


def test_story_cursors() -> None:
    """A story cursor holds an id the database can compare (PostgreSQL's ids are 32-bit;
    JSON's true is not an id), or is refused."""
    assert story_before(story_cursor(7)) == 7
    for parts in (["story", MAX_ID + 1], ["story", True], ["story", -1], ["story", "7"], [7]):
        with pytest.raises(BadInputError):
            story_before(encode_cursor(*parts))
