"""The public shapes: one label mapping, readable validation messages, and response
fields that keep the types of the table columns they show."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from sqlmodel import SQLModel

from worker.models import (
    Article,
    ArticleBase,
    CrawlRequest,
    CrawlRequestBase,
    Feed,
    FeedBase,
    Story,
    StoryBase,
)
from worker.schemas import (
    HTTP_URL,
    ArticleOut,
    CrawlRequestOut,
    FeedIn,
    FeedOut,
    RecrawlIn,
    StoryOut,
    describe,
    http_url,
    label_of,
)


def problems(model: type[BaseModel], **values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        model(**values)
    return describe(raised.value)


def test_label_of() -> None:
    assert (label_of(True), label_of(False)) == ("ukraine-security", "other")


FEED = {"name": "kyiv", "url": "https://kyiv.example/rss"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "ftp://x.example/feed"}, "url: not an http(s) URL: 'ftp://x.example/feed'"),
        ({"url": "https://"}, "url: not an http(s) URL: 'https://'"),
        ({"url": "http:/"}, "url: String should have at least 8 characters"),
        ({"name": "a b"}, "name: String should match pattern"),
        ({"poll_interval_seconds": 5}, "poll_interval_seconds: Input should be greater than or"),
    ],
)
def test_feed_validation_says_which_field_and_why(values: dict[str, Any], message: str) -> None:
    assert problems(FeedIn, **{**FEED, **values}).startswith(message)


def test_feed_defaults() -> None:
    feed = FeedIn(**FEED)
    assert (feed.tags, feed.enabled, feed.poll_interval_seconds) == ([], True, None)
    assert FeedIn(**FEED, colour="red") == feed  # the API ignores unknown keys


@pytest.mark.parametrize(
    "values",
    [{}, {"feed": "kyiv", "url": "https://x.example/a"}, {"feed": "kyiv", "since": "2026-05-01"}],
)
def test_recrawl_takes_exactly_one_target(values: dict[str, Any]) -> None:
    assert problems(RecrawlIn, **values) == "give exactly one of feed, url, since"


def test_recrawl_refuses_what_it_cannot_fetch_or_date() -> None:
    assert problems(RecrawlIn, url="ftp://example.org/a") == (
        "url: not an http(s) URL: 'ftp://example.org/a'"
    )
    assert problems(RecrawlIn, url="https:///no-host").startswith("url: not an http(s) URL")
    assert problems(RecrawlIn, since="soon").startswith("since: Input should be a valid datetime")
    assert RecrawlIn(url="https://example.org/a").requested_by == "api"


@pytest.mark.parametrize("since", [1714564800, "0.5", "1e5"])
def test_a_number_is_not_a_time(since: object) -> None:
    """pydantic reads a number as seconds since 1970; the API refuses it (422)."""
    assert problems(RecrawlIn, since=since) == (
        "since: a time is an ISO 8601 date or date-time, not a number"
    )


def test_a_time_past_utcs_calendar_is_its_edge() -> None:
    """A valid RFC 3339 time that UTC cannot hold is the first (or last) time UTC can,
    not a 500 when the driver converts it."""
    assert RecrawlIn(since="0001-01-01T00:00:00+05:00").since == datetime.min.replace(tzinfo=UTC)
    assert RecrawlIn(since="9999-12-31T23:59:59-05:00").since == datetime.max.replace(tzinfo=UTC)
    assert RecrawlIn(since="2026-05-01").since == datetime(2026, 5, 1)


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/\x00",
        "https://a.example/a b",
        "https://пример.укр/",
        "http://[::1/",
        "http://[:::]/",
    ],
)
def test_urls_the_schema_pattern_refuses_are_refused(url: str) -> None:
    assert not re.match(HTTP_URL, url)
    assert problems(FeedIn, **{**FEED, "url": url}).startswith("url: not an http(s) URL")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(HTTP_URL))
def test_every_url_the_published_pattern_allows_is_accepted(url: str) -> None:
    """The schema's pattern is what the API takes: a client (or fuzzer) that follows it
    is never refused."""
    assert http_url(url) == url


def test_json_types_are_not_coerced() -> None:
    """The schema says integer and boolean: "60" and 0 are refused, 60.0 is 60."""
    assert problems(FeedIn, **FEED, poll_interval_seconds="60") == (
        "poll_interval_seconds: Input should be a JSON number"
    )
    assert problems(FeedIn, **FEED, enabled=0) == "enabled: Input should be a valid boolean"
    assert FeedIn(**FEED, poll_interval_seconds=60.0).poll_interval_seconds == 60


def test_describe_names_options() -> None:
    with pytest.raises(ValidationError) as raised:
        RecrawlIn(url="x")
    assert describe(raised.value, {"url": "--url"}) == "--url: not an http(s) URL: 'x'"


@pytest.mark.parametrize(
    ("public", "table"),
    [(ArticleOut, Article), (StoryOut, Story), (FeedOut, Feed), (CrawlRequestOut, CrawlRequest)],
)
def test_response_fields_have_the_column_types(
    public: type[BaseModel], table: type[SQLModel]
) -> None:
    """A column whose type changes must change the API's field with it (or fail here)."""
    # Stored rows always have an id; the body is left out of lists.
    read_as = {"id": int, "body": str | None}
    shared = [name for name in public.model_fields if name in table.model_fields]
    assert len(shared) >= 10
    for name in shared:
        expected = read_as.get(name, table.model_fields[name].annotation)
        assert public.model_fields[name].annotation == expected, name


@pytest.mark.parametrize(
    ("public", "table", "base"),
    [
        (ArticleOut, Article, ArticleBase),
        (StoryOut, Story, StoryBase),
        (FeedOut, Feed, FeedBase),
        (CrawlRequestOut, CrawlRequest, CrawlRequestBase),
    ],
)
def test_a_row_and_its_public_shape_share_one_declaration(
    public: type[BaseModel], table: type[SQLModel], base: type[SQLModel]
) -> None:
    """The columns a reader sees are declared once, on the base both classes derive from."""
    assert issubclass(public, base)
    assert issubclass(table, base)
    assert not issubclass(public, table)
    assert set(base.model_fields) <= set(table.__table__.columns.keys())  # type: ignore[attr-defined]
    # Every field is in every answer: the OpenAPI schema says so even where a column
    # has a default, so generated clients do not make them optional.
    schema = public.model_json_schema(mode="serialization")
    assert set(schema["required"]) == set(public.model_fields)
