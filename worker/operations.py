"""What the operator's two doors do, once: ``ingest`` (:mod:`worker.cli`) and the
HTTP API (:mod:`worker.api`) call these and only render the result.

Each operation takes plain values or a schema (:mod:`worker.schemas`), opens its own
session, and returns schemas. A refusal is an exception typed by what the caller
tells its user: :class:`NotFoundError` (HTTP 404, exit 2), :class:`BadInputError`
(400, exit 2) and :class:`~worker.broker.BrokerUnavailableError` (503, exit 3:
nothing was recorded or enqueued). No typer, FastAPI or rich here, and no Celery
until something is enqueued (:mod:`worker.broker`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from . import broker, store
from .db import session_scope
from .models import Article, Story, utcnow
from .schemas import (
    ArticleOut,
    ChangePage,
    CrawlRequestOut,
    FeedImportOut,
    FeedIn,
    FeedOut,
    FeedStatsOut,
    Health,
    PausedHostOut,
    RecrawlIn,
    StatsOut,
    StoryDetail,
    StoryOut,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
)
from .search import QueryError, is_blank

Row = TypeVar("Row")

HEALTH_BROKER_TIMEOUT = 2.0
"""Seconds: a health check answers well inside a container probe's timeout."""


class NotFoundError(LookupError):
    """No row by that key (``kind`` names what was looked for)."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"unknown {kind} {key!r}")
        self.kind = kind
        self.key = key


class BadInputError(ValueError):
    """Input the caller must fix (a date, a cursor); the message says what is wrong."""


class ConflictError(BadInputError):
    """Input that clashes with a stored row (a feed URL another feed has): HTTP 409,
    exit 2 like any bad input."""


def _found(row: Row | None, kind: str, key: object) -> Row:
    if row is None:
        raise NotFoundError(kind, key)
    return row


# --- feeds -------------------------------------------------------------------------------


def list_feeds() -> list[FeedOut]:
    with session_scope() as session:
        return [FeedOut.model_validate(f) for f in store.list_feeds(session)]


def get_feed(name: str) -> FeedOut:
    with session_scope() as session:
        return FeedOut.model_validate(_found(store.get_feed_by_name(session, name), "feed", name))


def save_feed(feed: FeedIn) -> tuple[FeedOut, bool]:
    """Add a feed, or update the feed of that name (or URL); returns ``(feed, created)``."""
    with session_scope() as session:
        try:
            row, created = store.upsert_feed(session, **feed.model_dump())
        except store.FeedUrlTakenError as exc:
            raise ConflictError(str(exc)) from None
        return FeedOut.model_validate(row), created


def import_feeds(path: Path) -> FeedImportOut:
    """Add or update every feed of a feed file, in one transaction (all or none)."""
    from .feedconfig import FeedConfigError, load_feed_specs

    try:
        specs = load_feed_specs(path)
    except FeedConfigError as exc:
        raise BadInputError(str(exc)) from exc
    created = 0
    with session_scope() as session:
        for spec in specs:
            try:
                created += store.upsert_feed(session, **spec.model_dump())[1]
            except store.FeedUrlTakenError as exc:
                raise ConflictError(f"{path}: {exc}") from None
    return FeedImportOut(created=created, updated=len(specs) - created)


def set_feed_enabled(name: str, *, enabled: bool) -> FeedOut:
    """Enable a feed (clearing its failure state, so it is polled at once) or disable it."""
    change = store.enable_feed if enabled else store.disable_feed
    with session_scope() as session:
        return FeedOut.model_validate(_found(change(session, name), "feed", name))


def remove_feed(name: str) -> None:
    """Delete a feed with its polls and entries; its stored articles are kept."""
    with session_scope() as session:
        if not store.remove_feed(session, name):
            raise NotFoundError("feed", name)


# --- articles and stories ------------------------------------------------------------------

ArticleKey = tuple[datetime | float | None, int]
"""Where a page of articles ended: the last row's sort time (or rank, by relevance) and id."""

ARTICLE_ORDERS = ("relevance", "published", "id")


def article_order(sort: str | None, query: str | None) -> str:
    """The order of an article listing: ``sort`` when given, else by relevance when
    searching and by publication time otherwise."""
    if sort is None:
        return "published" if is_blank(query) else "relevance"
    if sort not in ARTICLE_ORDERS:
        raise BadInputError(f"sort must be one of {', '.join(ARTICLE_ORDERS)}, not {sort!r}")
    if sort == "relevance" and is_blank(query):
        raise BadInputError("sort=relevance needs a search (q)")
    return sort


StoryFilter = store.StoryFilter

Filter = TypeVar("Filter", store.ArticleFilter, store.StoryFilter)


def _in_utc(where: Filter) -> Filter:
    """Times without a zone are UTC, like every stored timestamp."""
    since, until = where.since, where.until
    return dataclasses.replace(
        where,
        since=None if since is None else store.as_utc(since),
        until=None if until is None else store.as_utc(until),
    )


def list_articles(
    where: store.ArticleFilter,
    *,
    limit: int,
    sort: str | None = None,
    after: ArticleKey | None = None,
    include_body: bool = False,
) -> tuple[list[ArticleOut], ArticleKey | None]:
    """Up to ``limit`` articles in :func:`article_order`, after ``after``; and the key
    to pass as ``after`` for the next page (None on the last page). A search
    (``where.query``) that cannot run is refused with the reason."""
    order = article_order(sort, where.query)
    with session_scope() as session:
        try:
            rows = store.list_articles(
                session, where=_in_utc(where), limit=limit + 1, sort=order, after=after
            )
        except QueryError as exc:
            raise BadInputError(f"search: {exc}") from exc
        names = store.feed_names(session)
        items = [ArticleOut.of(a, names, body=include_body) for a, _ in rows[:limit]]
    if len(rows) <= limit:
        return items, None
    last, key = rows[limit - 1]
    assert last.id is not None
    return items, (key, last.id)


def get_article(article_id: int) -> ArticleOut:
    """One article with its full extracted body."""
    with session_scope() as session:
        article = _found(session.get(Article, article_id), "article", article_id)
        return ArticleOut.of(article, store.feed_names(session), body=True)


def list_stories(
    where: StoryFilter, *, limit: int, before_id: int | None = None
) -> tuple[list[StoryOut], int | None]:
    """Up to ``limit`` stories, newest first, older than ``before_id``; and the id to
    pass as ``before_id`` for the next page (None on the last page)."""
    with session_scope() as session:
        found = store.list_stories(
            session, where=_in_utc(where), limit=limit + 1, before_id=before_id
        )
        items = [StoryOut.of(s) for s in found[:limit]]
    return items, (items[-1].id if len(found) > limit else None)


def get_story(story_id: int) -> StoryDetail:
    """One story with all its articles (without bodies)."""
    with session_scope() as session:
        story = _found(session.get(Story, story_id), "story", story_id)
        names = store.feed_names(session)
        articles = [
            ArticleOut.of(a, names, body=False) for a in store.story_articles(session, story_id)
        ]
        return StoryDetail.model_validate({**StoryOut.of(story).model_dump(), "articles": articles})


# --- re-crawls ---------------------------------------------------------------------------


def submit_recrawl(request: RecrawlIn) -> CrawlRequestOut:
    """Record and enqueue a re-crawl of a feed, one URL, or everything seen since a time.

    An unknown feed or a dead broker refuses it before anything is recorded, so a
    request on the books is one the workers were handed.
    """
    if request.feed is not None:
        kind, target = "feed", request.feed
        get_feed(request.feed)
    elif request.url is not None:
        kind, target = "url", request.url
    else:
        assert request.since is not None  # RecrawlIn holds exactly one of the three
        kind, target = "since", store.as_utc(request.since).isoformat()
    broker.check_broker()
    request_id = broker.submit_crawl_request(
        kind=kind, target=target, force=request.force, requested_by=request.requested_by
    )
    return crawl_request(request_id)


def crawl_request(request_id: int) -> CrawlRequestOut:
    """A re-crawl request with its progress counted now."""
    with session_scope() as session:
        request = store.crawl_request_progress(session, request_id)
        return CrawlRequestOut.model_validate(_found(request, "crawl request", request_id))


def list_crawl_requests(*, limit: int = 20) -> list[CrawlRequestOut]:
    """The latest re-crawl requests, newest first, each with its progress counted now
    (in one session, not one per request)."""
    with session_scope() as session:
        ids = [r.id for r in store.list_crawl_requests(session, limit=limit) if r.id]
        found = [store.crawl_request_progress(session, i) for i in ids]
        return [CrawlRequestOut.model_validate(r) for r in found if r is not None]


# --- reclassification ------------------------------------------------------------------


@dataclass(frozen=True)
class ReclassifyRun:
    """Articles sent to be classified again, and what tells how many are done."""

    version: str
    articles: int
    batches: int
    all_articles: bool
    since: datetime | None
    started: datetime
    max_id: int


def start_reclassify(*, all_articles: bool, since: datetime | None) -> ReclassifyRun:
    """Send stored articles to the workers in batches: those labelled by another
    classifier version, or with ``all_articles`` every one (since ``since``)."""
    from .classify import classifier_version
    from .settings import get_settings

    version = classifier_version(get_settings().classifier)
    with session_scope() as session:
        ids = store.article_ids_since(
            session, since=since, only_outdated_version=None if all_articles else version
        )
    batches, started = 0, utcnow()
    if ids:
        broker.check_broker()
        # A second's margin for clocks (a worker's, the database's) a little behind
        # this one: an article re-labelled just after this point must count as done.
        started = utcnow() - timedelta(seconds=1)
        batches = broker.enqueue_reclassify(ids)
    return ReclassifyRun(
        version=version,
        articles=len(ids),
        batches=batches,
        all_articles=all_articles,
        since=since,
        started=started,
        max_id=max(ids, default=0),
    )


def reclassify_done(run: ReclassifyRun) -> int:
    """How many of the run's articles now carry the current version (with
    ``all_articles``: how many were re-labelled since the run started)."""
    if not run.articles:
        return 0
    with session_scope() as session:
        if run.all_articles:
            n = store.count_touched(
                session, updated_since=run.started, since=run.since, max_id=run.max_id
            )
        else:
            n = run.articles - store.count_outdated(session, version=run.version, since=run.since)
    return max(0, min(run.articles, n))


# --- the change feed --------------------------------------------------------------------

ResyncRequiredError = store.ResyncRequiredError
"""The reader's position is not in the change log (pruned, or beyond its end): HTTP 410,
exit 4. It must reload its copy and follow from the error's ``head``."""

MAX_CHANGES_PAGE = 1000
"""The most changes one page holds."""


def read_changes(
    *,
    after: int,
    limit: int = 100,
    kinds: str | list[str] | None = None,
    include_body: bool = False,
) -> ChangePage:
    """Changes of articles, stories and feeds after position ``after``, oldest first, each
    with its row as it is now, and the position to pass as ``after`` next time
    (``ingest changes``, ``GET /changes``; docs/schema.md, "Change feed")."""
    from . import changefeed

    if after < 0:
        raise BadInputError(f"after must be 0 or more, not {after}")
    if not 1 <= limit <= MAX_CHANGES_PAGE:
        raise BadInputError(f"limit must be 1 to {MAX_CHANGES_PAGE}, not {limit}")
    try:
        wanted = changefeed.parse_kinds(kinds)
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    return changefeed.read_page(after=after, limit=limit, kinds=wanted, include_body=include_body)


# --- webhook subscriptions ---------------------------------------------------------------


def add_subscription(spec: SubscriptionIn) -> SubscriptionCreated:
    """Subscribe a URL to the changes after now (docs/operations.md, "Webhooks").

    The URL must pass the SSRF guard now, as it must at every delivery. The answer
    holds the signing secret, the only time it is shown.
    """
    from . import changefeed
    from .errors import IngestError
    from .settings import get_settings
    from .ssrf import check_url_allowed
    from .webhooks import new_secret

    try:
        check_url_allowed(spec.url, allowed_networks=get_settings().allow_private_networks)
    except IngestError as exc:
        raise BadInputError(f"subscriber URL refused: {exc.message}") from None
    changefeed.sequence_pending(wait_ms=changefeed.READ_SEQUENCE_WAIT_MS)
    with session_scope() as session:
        _, head = store.change_log_bounds(session)
        row = store.create_subscription(
            session,
            url=spec.url,
            label=spec.label,
            topics=spec.topics,
            kinds=spec.kinds,
            secret=new_secret(),
            position=head,
        )
        return SubscriptionCreated.model_validate({**row.model_dump(), "lag": 0})


def _subscription_out(row: Any, head: int) -> SubscriptionOut:
    return SubscriptionOut.model_validate(
        {**row.model_dump(exclude={"secret"}), "lag": max(0, head - row.position)}
    )


def _numbered_head() -> None:
    """Number pending changes, so a lag counts what is committed now."""
    from . import changefeed

    changefeed.sequence_pending(wait_ms=changefeed.READ_SEQUENCE_WAIT_MS)


def list_subscriptions() -> list[SubscriptionOut]:
    """Every subscription with its state, failures and lag."""
    _numbered_head()
    with session_scope() as session:
        _, head = store.change_log_bounds(session)
        return [_subscription_out(r, head) for r in store.list_subscriptions(session)]


def get_subscription(subscription_id: int) -> SubscriptionOut:
    _numbered_head()
    with session_scope() as session:
        _, head = store.change_log_bounds(session)
        row = store.get_subscription(session, subscription_id)
        return _subscription_out(_found(row, "subscription", subscription_id), head)


def pause_subscription(subscription_id: int) -> SubscriptionOut:
    """Stop delivering; the position stays, so ``resume`` loses nothing."""
    with session_scope() as session:
        _, head = store.change_log_bounds(session)
        row = store.pause_subscription(session, subscription_id)
        return _subscription_out(_found(row, "subscription", subscription_id), head)


def resume_subscription(subscription_id: int) -> SubscriptionOut:
    """Deliver again, at once, from where delivery stopped (its failures forgotten)."""
    import structlog

    with session_scope() as session:
        horizon, head = store.change_log_bounds(session)
        row, skipped = store.resume_subscription(
            session, subscription_id, horizon=horizon, head=head
        )
        found = _found(row, "subscription", subscription_id)
        if skipped:
            structlog.get_logger(__name__).warning(
                "subscription_resumed_past_pruned_changes",
                subscription_id=subscription_id,
                skipped_positions=skipped,
            )
        return _subscription_out(found, head)


def remove_subscription(subscription_id: int) -> None:
    with session_scope() as session:
        if not store.remove_subscription(session, subscription_id):
            raise NotFoundError("subscription", subscription_id)


# --- stats and health -------------------------------------------------------------------


def totals() -> dict[str, Any]:
    """Whole-database counts (``ingest stats`` and the ``/metrics`` gauges)."""
    with session_scope() as session:
        return store.totals(session)


def stats() -> StatsOut:
    """Per-feed health and counts, and totals for the whole database."""
    with session_scope() as session:
        feeds = [
            FeedStatsOut(
                feed=FeedOut.model_validate(s.feed),
                polls_24h=s.polls_24h,
                poll_errors_24h=s.poll_errors_24h,
                entries=s.entries,
                articles=s.articles,
                ukraine_security=s.positives,
            )
            for s in store.feed_stats(session)
        ]
        totals = store.totals(session)
    return StatsOut(totals=totals, feeds=feeds, paused_hosts=paused_hosts())


def paused_hosts() -> list[PausedHostOut] | None:
    """The hosts paused for every worker now, and why; None when Redis does not answer."""
    from .politeness import read_paused_hosts
    from .settings import get_settings

    found = read_paused_hosts(get_settings())
    if found is None:
        return None
    return [PausedHostOut(host=p.host, seconds_left=p.seconds_left, reason=p.reason) for p in found]


def health() -> Health:
    """Database and broker reachability (``GET /health``, ``ingest health``)."""
    database = broker_state = "ok"
    try:
        with session_scope() as session:
            store.check_database(session)
    except Exception as exc:  # any failure to answer is "down"; the text says why
        database = f"error: {type(exc).__name__}"
    try:
        broker.check_broker(timeout=HEALTH_BROKER_TIMEOUT)
    except broker.BrokerUnavailableError:
        broker_state = "error: unreachable"
    return Health(
        status="ok" if database == broker_state == "ok" else "degraded",
        database=database,
        broker=broker_state,
    )


# --- the CLI's time syntax ----------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str) -> datetime:
    """An ISO date/datetime (UTC unless it says otherwise) or ``N[mhdw]`` ago."""
    match = _RELATIVE.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return datetime.now(UTC) - delta
    try:
        if len(value.strip()) == 10:
            day = date.fromisoformat(value.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInputError(
            f"bad date {value!r} (use 2026-05-01, 2026-05-01T12:00Z or 2d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
