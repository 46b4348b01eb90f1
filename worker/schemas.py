"""The public shapes: what the API accepts and answers and what ``ingest --json`` prints.

Defined once for both doors (the CLI and the API), in the families of the FastAPI
full-stack template: a body the caller sends (``...In``, the template's *Create*)
and what a stored row shows (``...Out``, its *Public*). The class names are the
ones ``/openapi.json`` has always published; clients generated from it name their
types after them, so the family keeps those names.

A stored row's ``...Out`` derives from the same ``...Base`` as its table
(:mod:`worker.models`), so the columns it shows are declared once; it adds only what
is not a column (the feed's name, the label) or is read differently (an id is
always set once stored; the body only when asked for).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlmodel._compat import SQLModelConfig

from .models import ArticleBase, CrawlRequestBase, FeedBase, StoryBase, SubscriptionBase

if TYPE_CHECKING:
    from .models import Article, Story

# Every field of a stored row's shape is present in every answer, so the OpenAPI
# schema marks them all required even where the column has a default.
_ROW = SQLModelConfig(from_attributes=True, json_schema_serialization_defaults_required=True)

Label = Literal["ukraine-security", "other"]
LABELS: tuple[Label, ...] = get_args(Label)


def label_of(is_ukraine_security: bool) -> Label:
    """The label a reader filters by, for the boolean the classifier stores."""
    return "ukraine-security" if is_ukraine_security else "other"


_H16 = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        f"({_H16}:){{7}}{_H16}",
        f"({_H16}:){{1,7}}:",
        *(f"({_H16}:){{1,{6 - n}}}(:{_H16}){{1,{n + 1}}}" for n in range(6)),
        f":((:{_H16}){{1,7}}|:)",
    ]
)
HTTP_URL = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~%!$&'()*+,;=-]+|\[(" + _IPV6 + r")\])"
    r"(:[0-9]{0,5})?([/?#][^\x00-\x20\x7f]*)?$"
)
"""What :func:`http_url` accepts, as the ``pattern`` ``/openapi.json`` publishes: an
http(s) scheme, an ASCII host (an international name in its ``xn--`` form) or an IPv6
address in brackets, an optional port, and no space or control character (PostgreSQL
cannot store a NUL)."""

_HTTP_URL = re.compile(HTTP_URL)

TEXT = r"^[^\x00]*$"
"""The pattern of free text a caller sends. PostgreSQL cannot store a NUL character, so
one would fail in the driver (a 500); and a pattern makes pydantic refuse a lone
surrogate, which neither database can encode."""

Text = Annotated[str, Field(pattern=TEXT)]


def http_url(value: str) -> str:
    """``value`` when it is an http(s) URL with a host: feeds and re-crawls fetch only those."""
    if not _HTTP_URL.match(value) or any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def _url(**bounds: Any) -> Any:
    """A URL field, checked by :func:`http_url`, whose schema says what that accepts."""
    return Field(max_length=2048, json_schema_extra={"pattern": HTTP_URL}, **bounds)


def _in_utc_range(value: datetime) -> datetime:
    """``value``, or the first or last time UTC can hold when ``value`` lies past it.

    ``0001-01-01T00:00:00+05:00`` is a valid RFC 3339 time, but before the first one
    UTC can hold: moving it to UTC, as every stored time is, would fail in the database
    driver, as a 500. As a bound ("since", "until") the first time UTC holds means the
    same, so it becomes that, and the schema's every date-time is accepted.
    """
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            edge = datetime.min if value.year == datetime.min.year else datetime.max
            return edge.replace(tzinfo=UTC)
    return value


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    """Refuse a number where a time is due: pydantic would read ``1714564800`` (or
    ``"0.5"``) as seconds since 1970, which no caller of this API means and the schema
    does not say."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("a time is an ISO 8601 date or date-time, not a number")
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_not_a_number),
    AfterValidator(_in_utc_range),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ],
            "description": "ISO 8601; UTC when it has no offset; a date is its midnight.",
        }
    ),
]
"""A time a caller sends (a filter, a re-crawl's start): a date-time or a date, UTC when
it has no offset."""


def describe(error: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """``field: problem`` for each problem, on one line, for an operator to read;
    ``names`` renames fields (to the CLI's option names, say)."""
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        where = (names or {}).get(where, where)
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


# --- feeds -----------------------------------------------------------------------------


def _json_number(value: object) -> object:
    """Refuse what JSON Schema does not call a number: pydantic would read ``"60"`` as
    60 and ``true`` as 1."""
    if isinstance(value, str | bool):
        raise ValueError("Input should be a JSON number")
    return value


MAX_POLL_INTERVAL = 30 * 24 * 3600
"""A month: the longest poll interval a feed may ask for (the column is a 32-bit integer)."""


class FeedIn(BaseModel):
    """A feed to add, or to update by name."""

    # Also `ingest feeds add`, and a [[feed]] table of the feed file
    # (worker.feedconfig.FeedSpec, which refuses unknown keys).

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: str = _url(min_length=8)
    tags: list[Annotated[Text, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    language: Text | None = Field(default=None, max_length=16)
    # As the schema says: an integer (60 or 60.0, not "60" nor true), a boolean (not 0).
    poll_interval_seconds: (
        Annotated[int, Field(ge=30, le=MAX_POLL_INTERVAL), BeforeValidator(_json_number)] | None
    ) = None
    enabled: StrictBool = True

    _http_url = field_validator("url")(http_url)


class FeedOut(FeedBase):
    """A feed with its health, as the operator sees it."""

    model_config = _ROW

    id: int


class FeedImportOut(BaseModel):
    """How many feeds of a feed file were new, and how many updated."""

    created: int
    updated: int


class FeedStatsOut(BaseModel):
    """A feed's health next to what it has produced (``ingest stats``)."""

    feed: FeedOut
    polls_24h: int
    poll_errors_24h: int
    entries: dict[str, int]
    articles: int
    ukraine_security: int


class PausedHostOut(BaseModel):
    """A host every worker leaves alone for now, and why: a 429/503 with Retry-After, or
    its circuit breaker (docs/fetching.md, "Circuit breaker")."""

    host: str
    seconds_left: float
    reason: str


class StatsOut(BaseModel):
    """Whole-database counts, every feed's stats, and the hosts paused now."""

    totals: dict[str, Any]
    feeds: list[FeedStatsOut]
    paused_hosts: list[PausedHostOut] | None = Field(
        default_factory=list,
        description="Hosts paused for every worker; null when Redis, which holds the "
        "pauses, did not answer (without Redis each worker keeps its own, unlisted).",
    )


# --- articles and stories -------------------------------------------------------------


class ArticleOut(ArticleBase):
    """A stored article with its feed's name and its label (body only when asked for)."""

    model_config = _ROW

    id: int
    feed: str | None = None
    body: str | None = Field(default=None, description="Only with include_body=true.")
    label: Label

    @classmethod
    def of(cls, article: Article, feeds: dict[int, str], *, body: bool) -> ArticleOut:
        """The row as readers see it; ``feeds`` maps feed ids to names."""
        return cls.model_validate(
            {
                **article.model_dump(exclude={"body", "minhash", "evidence", "title_history"}),
                "feed": feeds.get(article.feed_id) if article.feed_id is not None else None,
                "label": label_of(article.is_ukraine_security),
                "body": article.body if body else None,
            }
        )


class ArticlePage(BaseModel):
    items: list[ArticleOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class StoryOut(StoryBase):
    """A story (one event, reported by one or more articles) with its label."""

    model_config = _ROW

    id: int
    label: Label

    @classmethod
    def of(cls, story: Story) -> StoryOut:
        return cls.model_validate(
            {**story.model_dump(), "label": label_of(story.is_ukraine_security)}
        )


class StoryPage(BaseModel):
    items: list[StoryOut]
    next_cursor: str | None


class StoryDetail(StoryOut):
    articles: list[ArticleOut]


# --- re-crawls, reclassification and health ----------------------------------------------


class RecrawlIn(BaseModel):
    """Exactly one of feed, url, since."""

    # The schema says "exactly one" too (oneOf), so generated clients and fuzzers know it.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("feed", "url", "since")
            ]
        }
    )

    feed: Text | None = Field(default=None, max_length=200)
    url: Annotated[str, _url()] | None = None
    since: Timestamp | None = None
    force: StrictBool = False
    requested_by: Text = Field(default="api", max_length=200)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> RecrawlIn:
        given = [v for v in (self.feed, self.url, self.since) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of feed, url, since")
        return self


class CrawlRequestOut(CrawlRequestBase):
    """A re-crawl request: who asked for what, and how far it got (``error``: why a
    failed request failed; null otherwise)."""

    model_config = _ROW

    id: int


class ReclassifyOut(BaseModel):
    """A reclassification run: how many articles were sent, and how many are done."""

    articles: int
    version: str
    batches: int
    done: int
    finished: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    broker: str


class ErrorOut(BaseModel):
    """A refusal the caller can act on (4xx) or a service that is down (503): why, in words."""

    detail: str


# --- the change feed -------------------------------------------------------------------

ChangeKind = Literal["article", "story", "feed"]
ChangeOp = Literal["insert", "update", "delete"]


class ChangeOut(BaseModel):
    """One change of the change feed: its place in the log, what changed and how, and
    that row as it is now (docs/schema.md, "Change feed")."""

    position: int = Field(description="Place in the log; positions only grow, with no gaps.")
    kind: ChangeKind
    id: int = Field(description="The article's, story's or feed's id.")
    op: ChangeOp
    changed_at: datetime = Field(description="When the (latest folded) change was written.")
    row: ArticleOut | StoryOut | FeedOut | None = Field(
        description="The row as it is now (not as it was at this change); null when it no "
        "longer exists (a delete here or further along the log)."
    )


class ResyncOut(ErrorOut):
    """410 from ``/changes``: the position is not in the log; reload, then follow from ``head``."""

    resync: Literal[True]
    reason: Literal["pruned", "ahead"]
    horizon: int
    head: int


class ChangePage(BaseModel):
    """A page of the change feed, oldest first."""

    changes: list[ChangeOut]
    next: int = Field(description="Pass as ?after= next time; equal to after when nothing is new.")
    head: int = Field(description="The log's last position now: next == head means caught up.")


# --- webhook subscriptions ----------------------------------------------------------------


def _topics_schema(schema: dict[str, Any]) -> None:
    """The topics' names as the items' ``enum`` (imported only when the schema is built:
    the classifier package is heavy)."""
    from .classify.topics import TOPICS

    schema["items"] = {"type": "string", "enum": list(TOPICS)}


def _articles_only() -> list[ChangeKind]:
    return ["article"]


class SubscriptionIn(BaseModel):
    """A webhook subscription to add: where to POST, and which changes (docs/operations.md,
    "Webhooks"). ``label`` and ``topics`` (any of) narrow articles and stories."""

    url: str = _url(min_length=8)
    label: Label | None = None
    topics: list[str] = Field(default_factory=list, json_schema_extra=_topics_schema)
    kinds: list[ChangeKind] = Field(default_factory=_articles_only, min_length=1)

    _http_url = field_validator("url")(http_url)

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, value: list[str]) -> list[str]:
        from .classify.topics import TOPICS

        unknown = [t for t in value if t not in TOPICS]
        if unknown:
            raise ValueError(f"unknown topic {unknown[0]!r} (one of {', '.join(TOPICS)})")
        return list(dict.fromkeys(value))

    @field_validator("kinds")
    @classmethod
    def _distinct_kinds(cls, value: list[ChangeKind]) -> list[ChangeKind]:
        return list(dict.fromkeys(value))


class SubscriptionOut(SubscriptionBase):
    """A subscription with its delivery health; never its secret, which only the answer
    to its creation shows (``SubscriptionCreated``)."""

    model_config = _ROW

    id: int
    lag: int = Field(default=0, description="Changes in the log after the subscription's position.")


class SubscriptionCreated(SubscriptionOut):
    """A new subscription and its signing secret, shown this once: store it now."""

    secret: str = Field(description="Verifies webhook-signature (Standard Webhooks, whsec_...).")
