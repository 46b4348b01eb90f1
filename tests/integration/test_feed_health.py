"""Feed polling against a real local server and database: conditional GET and its
stale-validator guard, health states and backoff, redirects, leases, the due query."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from tests.integration.helpers import counted_statements, detached, hanging_page, rss
from tests.support.factories import add_feed
from tests.support.logs import LogEvents
from worker import pipeline, store
from worker.db import session_scope
from worker.fetch import Fetcher
from worker.localweb import LocalWeb
from worker.models import Feed, FeedPoll, utcnow
from worker.politeness import HostRate, HostRates, LocalHostLimiter
from worker.settings import Settings, get_settings

pytestmark = pytest.mark.integration


class FeedServer:
    """A feed endpoint whose body, validators and behaviour a test changes at will."""

    def __init__(self, web: LocalWeb) -> None:
        self.web = web
        self.body = b""
        self.set_items("One")
        self.etag: str | None = '"v1"'
        self.always_304 = False  # a broken server: 304 to any conditional request
        self.ignore_validators = False  # a server that always sends the full body
        self.status = 200
        self.headers: dict[str, str] = {}
        self.conditional: list[bool] = []
        web.routes["/feed.xml"] = self.handle

    @property
    def url(self) -> str:
        return self.web.url("feed.xml")

    def set_items(self, *titles: str) -> None:
        items = [{"title": t, "link": f"http://127.0.0.1/{t}", "guid": t} for t in titles]
        self.body = rss(items).encode()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        sent = h.headers.get("If-None-Match")
        self.conditional.append(sent is not None)
        headers = dict(self.headers)
        if self.etag:
            headers["ETag"] = self.etag
        if self.status != 200:
            status, body = self.status, b"error"
        elif (
            sent is not None
            and not self.ignore_validators
            and (self.always_304 or sent == self.etag)
        ):
            status, body = 304, b""
        else:
            status, body = 200, self.body
            headers["Content-Type"] = "application/rss+xml; charset=utf-8"
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


@pytest.fixture
def feed_server(web: LocalWeb) -> FeedServer:
    return FeedServer(web)


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return get_settings().model_copy(update={"revalidate_every_polls": 3})


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with Fetcher(pipeline.fetch_policy(settings)) as f:
        yield f


def _feed(feed_id: int) -> Feed:
    return detached(Feed, feed_id)


def _poll(feed_id: int, fetcher: Fetcher, settings: Settings) -> pipeline.PollOutcome:
    return pipeline.poll_feed(feed_id=feed_id, fetcher=fetcher, settings=settings, owner="t")


def test_conditional_get_then_304_skips_parsing(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings
) -> None:
    feed_id = add_feed(url=feed_server.url)
    first = _poll(feed_id, fetcher, settings)
    assert (first.status, len(first.new_entry_ids)) == ("ok", 1)
    stored = _feed(feed_id)
    assert stored.etag == '"v1"'
    assert stored.last_body_hash
    second = _poll(feed_id, fetcher, settings)
    assert second.status == "not_modified"
    assert second.http_status == 304
    assert feed_server.conditional == [False, True]
    assert _feed(feed_id).conditional_get


def test_same_body_without_validators_is_not_parsed_again(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings
) -> None:
    feed_server.etag = None
    feed_id = add_feed(url=feed_server.url)
    assert _poll(feed_id, fetcher, settings).status == "ok"
    again = _poll(feed_id, fetcher, settings)
    assert again.status == "unchanged"
    assert again.entries_seen == 0
    feed_server.set_items("One", "Two")
    changed = _poll(feed_id, fetcher, settings)
    assert changed.status == "ok"
    assert len(changed.new_entry_ids) == 1


def test_same_etag_with_changed_body_turns_conditional_get_off(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    """A 200 with the stored ETag but a different body: the ETag can't be trusted."""
    feed_server.ignore_validators = True
    feed_id = add_feed(url=feed_server.url)
    _poll(feed_id, fetcher, settings)
    feed_server.set_items("One", "Two")  # the ETag stays "v1"
    outcome = _poll(feed_id, fetcher, settings)
    assert outcome.status == "ok"
    assert outcome.conditional_get_disabled == "etag_unchanged_body_changed"
    assert len(outcome.new_entry_ids) == 1
    assert not _feed(feed_id).conditional_get
    log_events().expect(
        "conditional_get_disabled", feed_id=feed_id, reason="etag_unchanged_body_changed"
    )
    _poll(feed_id, fetcher, settings)
    assert feed_server.conditional[-1] is False


def test_server_that_always_answers_304_is_caught_by_revalidation(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    """Every 3rd poll (setting) double-checks a 304 with a full GET; a changed body exposes it."""
    feed_server.always_304 = True
    feed_id = add_feed(url=feed_server.url)
    assert _poll(feed_id, fetcher, settings).status == "ok"
    feed_server.set_items("One", "Two", "Three")  # the ETag stays "v1": broken server
    assert _poll(feed_id, fetcher, settings).status == "not_modified"
    assert _poll(feed_id, fetcher, settings).status == "not_modified"
    # Poll 4 = 3 polls after the last full fetch: its 304 is checked with a full GET.
    outcome = _poll(feed_id, fetcher, settings)
    assert outcome.status == "ok"
    assert outcome.conditional_get_disabled == "not_modified_while_changed"
    assert len(outcome.new_entry_ids) == 2
    assert feed_server.conditional == [False, True, True, True, False]
    assert not _feed(feed_id).conditional_get
    log_events().expect(
        "conditional_get_disabled", feed_id=feed_id, reason="not_modified_while_changed"
    )


def test_revalidation_of_an_honest_server_keeps_conditional_get(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    feed_id = add_feed(url=feed_server.url)
    statuses = [_poll(feed_id, fetcher, settings).status for _ in range(5)]
    assert statuses == ["ok", "not_modified", "not_modified", "unchanged", "not_modified"]
    assert feed_server.conditional == [False, True, True, True, False, True]
    assert _feed(feed_id).conditional_get
    assert not log_events().named("conditional_get_disabled")


def test_failures_back_off_and_mark_the_feed_failing(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    feed_id = add_feed(url=feed_server.url)
    feed_server.status = 500
    before = utcnow()
    first = _poll(feed_id, fetcher, settings)
    assert first.status == "error"
    feed = _feed(feed_id)
    assert (feed.state, feed.error_count, feed.last_error_class) == ("failing", 1, "http_5xx")
    assert feed.last_http_status == 500
    assert feed.next_poll_at is not None
    first_wait = (feed.next_poll_at - before).total_seconds()
    _poll(feed_id, fetcher, settings)
    feed = _feed(feed_id)
    assert feed.error_count == 2
    assert feed.next_poll_at is not None
    assert (feed.next_poll_at - before).total_seconds() >= first_wait * 1.5
    with session_scope() as session:
        polls = session.exec(select(FeedPoll).where(col(FeedPoll.feed_id) == feed_id)).all()
        assert [(p.status, p.error_class) for p in polls] == [("error", "http_5xx")] * 2
    feed_server.status = 200
    assert _poll(feed_id, fetcher, settings).status == "ok"
    feed = _feed(feed_id)
    assert (feed.state, feed.error_count, feed.last_error) == ("healthy", 0, None)
    events = log_events()
    failed = events.named("feed_poll_failed", feed_id=feed_id, error_class="http_5xx")
    assert len(failed) == 2
    assert failed[0]["url"] == feed_server.url
    # The state changed once, on the first failure; the second left it failing.
    assert len(events.named("feed_state_changed", feed_id=feed_id)) == 1
    events.expect(
        "feed_state_changed", feed_id=feed_id, previous="healthy", state="failing",
        error_class="http_5xx", error_count=1,
    )  # fmt: skip


def test_retry_after_is_honoured(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings
) -> None:
    feed_id = add_feed(url=feed_server.url)
    feed_server.status = 429
    feed_server.headers = {"Retry-After": "7200"}
    before = utcnow()
    _poll(feed_id, fetcher, settings)
    feed = _feed(feed_id)
    assert feed.next_poll_at is not None
    assert feed.next_poll_at >= before + timedelta(seconds=7200)
    assert feed.last_error_class == "rate_limited"


def test_cache_control_max_age_delays_the_next_poll(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings
) -> None:
    feed_server.headers = {"Cache-Control": "public, max-age=10800"}
    feed_id = add_feed(url=feed_server.url)
    before = utcnow()
    _poll(feed_id, fetcher, settings)
    next_poll = _feed(feed_id).next_poll_at
    assert next_poll is not None
    assert next_poll >= before + timedelta(seconds=10800)


def test_gone_disables_at_once(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    feed_id = add_feed(url=feed_server.url)
    feed_server.status = 410
    _poll(feed_id, fetcher, settings)
    feed = _feed(feed_id)
    assert (feed.state, feed.enabled, feed.last_error_class) == ("disabled", False, "gone")
    log_events().expect(
        "feed_state_changed", feed_id=feed_id, previous="healthy", state="disabled",
        error_class="gone",
    )  # fmt: skip


def test_disabled_after_days_of_failure_and_enable_resets(
    feed_server: FeedServer, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    feed_id = add_feed(url=feed_server.url, name="flaky")
    feed_server.status = 503
    _poll(feed_id, fetcher, settings)
    assert _feed(feed_id).state == "failing"
    with session_scope() as session:
        session.execute(
            sa.update(Feed)
            .where(col(Feed.id) == feed_id)
            .values(first_failure_at=utcnow() - timedelta(days=settings.disable_after_days + 1))
        )
    _poll(feed_id, fetcher, settings)
    feed = _feed(feed_id)
    assert (feed.state, feed.enabled) == ("disabled", False)
    log_events().expect(
        "feed_state_changed", feed_id=feed_id, previous="failing", state="disabled",
        error_class="http_5xx", error_count=2,
    )  # fmt: skip
    with session_scope() as session:
        assert store.feed_health_counts(session) == {"disabled": 1}
        session.execute(
            sa.update(Feed).where(col(Feed.id) == feed_id).values(conditional_get=False)
        )
    with session_scope() as session:
        enabled = store.enable_feed(session, "flaky")
        assert enabled is not None
        assert store.enable_feed(session, "no-such-feed") is None
    feed = _feed(feed_id)
    assert (feed.state, feed.enabled, feed.error_count) == ("healthy", True, 0)
    assert feed.conditional_get
    assert feed.first_failure_at is None
    assert feed.next_poll_at is not None
    assert feed.next_poll_at <= utcnow()


def test_html_instead_of_a_feed_is_recorded(
    web: LocalWeb, fetcher: Fetcher, settings: Settings, log_events: LogEvents
) -> None:
    url = web.add_page("page.html", "<html><body><p>Not a feed</p></body></html>")
    feed_id = add_feed(url=url)
    outcome = _poll(feed_id, fetcher, settings)
    assert outcome.status == "error"
    assert _feed(feed_id).last_error_class == "not_a_feed"
    log_events().expect("feed_poll_failed", feed_id=feed_id, url=url, error_class="not_a_feed")


def test_a_feed_that_never_answers_times_out(
    web: LocalWeb, release: threading.Event, settings: Settings, log_events: LogEvents
) -> None:
    """A server that accepts the connection and says nothing: a timeout, counted like
    any other failure of the poll."""
    web.routes["/silent.xml"] = hanging_page(release)
    feed_id = add_feed(url=web.url("silent.xml"))
    quick = settings.model_copy(update={"read_timeout": 0.5})
    with Fetcher(pipeline.fetch_policy(quick)) as fetcher:
        assert _poll(feed_id, fetcher, quick).status == "error"
    feed = _feed(feed_id)
    assert (feed.state, feed.last_error_class) == ("failing", "timeout")
    log_events().expect("feed_poll_failed", feed_id=feed_id, error_class="timeout")


def _redirect(to: str) -> pipeline.PollOutcome | object:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(int(to.split(" ")[0]))
        h.send_header("Location", to.split(" ")[1])
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handler


def test_permanent_redirect_updates_the_feed_url(
    web: LocalWeb, feed_server: FeedServer, fetcher: Fetcher, settings: Settings
) -> None:
    web.routes["/old.xml"] = _redirect("301 /feed.xml")  # type: ignore[assignment]
    web.routes["/temp.xml"] = _redirect("302 /feed.xml")  # type: ignore[assignment]
    moved = add_feed(url=web.url("old.xml"), name="moved")
    temporary = add_feed(url=web.url("temp.xml"), name="temporary")
    _poll(moved, fetcher, settings)
    _poll(temporary, fetcher, settings)
    assert _feed(moved).url == feed_server.url
    assert _feed(temporary).url == web.url("temp.xml")


def test_permanent_redirect_onto_another_feeds_url_is_not_followed(
    web: LocalWeb, feed_server: FeedServer, fetcher: Fetcher, settings: Settings
) -> None:
    web.routes["/old.xml"] = _redirect("308 /feed.xml")  # type: ignore[assignment]
    add_feed(url=feed_server.url, name="existing")
    moved = add_feed(url=web.url("old.xml"), name="moved")
    assert _poll(moved, fetcher, settings).status == "ok"
    assert _feed(moved).url == web.url("old.xml")


def test_limiter_throttle_reschedules_without_counting_a_failure(
    feed_server: FeedServer, settings: Settings, log_events: LogEvents
) -> None:
    limiter = LocalHostLimiter(HostRates(HostRate(1.0, 1), {}), max_wait=1.0)
    limiter.pause("127.0.0.1", 600)
    feed_id = add_feed(url=feed_server.url)
    before = utcnow()
    with Fetcher(pipeline.fetch_policy(settings), limiter=limiter) as fetcher:
        outcome = _poll(feed_id, fetcher, settings)
    assert outcome.status == "throttled"
    feed = _feed(feed_id)
    assert (feed.state, feed.error_count) == ("healthy", 0)
    assert feed.next_poll_at is not None
    assert feed.next_poll_at >= before + timedelta(seconds=590)
    assert feed.lease_owner is None
    assert feed_server.conditional == []
    throttled = log_events().expect("feed_poll_throttled", feed_id=feed_id)
    assert throttled["wait_seconds"] >= 590
    assert not log_events().named("feed_poll_failed")


def test_two_concurrent_polls_of_one_feed_fetch_once(database_url: str, web: LocalWeb) -> None:
    """The feed lease: a poll while another is mid-fetch is skipped (SQLite and PostgreSQL)."""
    settings = get_settings()
    assert settings.database_url == database_url
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_feed(h: BaseHTTPRequestHandler) -> None:
        calls.append(h.path)
        entered.set()
        release.wait(20)
        body = rss([{"title": "A", "link": "http://127.0.0.1/a"}]).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    web.routes["/slow.xml"] = slow_feed
    feed_id = add_feed(url=web.url("slow.xml"))
    results: list[pipeline.PollOutcome] = []
    with (
        Fetcher(pipeline.fetch_policy(settings)) as f1,
        Fetcher(pipeline.fetch_policy(settings)) as f2,
    ):
        first = threading.Thread(
            target=lambda: results.append(
                pipeline.poll_feed(feed_id=feed_id, fetcher=f1, settings=settings, owner="a")
            )
        )
        first.start()
        assert entered.wait(20)
        second = pipeline.poll_feed(feed_id=feed_id, fetcher=f2, settings=settings, owner="b")
        release.set()
        first.join(20)
    assert second.status == "skipped"
    assert [r.status for r in results] == ["ok"]
    assert calls == ["/slow.xml"]
    assert _feed(feed_id).lease_owner is None


def _statement_kinds(statements: list[str]) -> list[str]:
    """Each statement as its verb and table (``"UPDATE feeds"``), transactions left out."""
    kinds = []
    for sql in statements:
        words = sql.split()
        verb = words[0].upper()
        if verb in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            continue
        table = {"SELECT": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}.get(verb)
        upper = [w.upper() for w in words]
        at = upper.index(table) + 1 if table in upper and verb != "UPDATE" else 1
        kinds.append(f"{verb} {words[at].strip('()')}")
    return kinds


def test_a_poll_runs_few_statements(database_url: str, feed_server: FeedServer) -> None:
    """What one poll costs the database, statement by statement (``bench/profile_poll.py``
    measures the CPU). A new feed: the lease and the feed's URL and validators in one
    ``UPDATE … RETURNING``, no history read (the GET is not conditional), then the feed
    row, the entries, the feed's new state with the lease released, and the poll. A 304:
    the history's two reads come back, as the conditional GET needs them. Before
    2026-12-06 the first poll ran ten statements and the 304 eight."""
    settings = get_settings()
    feed_server.set_items("One", "Two", "Three")
    feed_id = add_feed(url=feed_server.url)
    with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
        with counted_statements() as first:
            outcome = pipeline.poll_feed(
                feed_id=feed_id, fetcher=fetcher, settings=settings, owner="t"
            )
        assert (outcome.status, len(outcome.new_entry_ids)) == ("ok", 3)
        with counted_statements() as second:
            again = pipeline.poll_feed(
                feed_id=feed_id, fetcher=fetcher, settings=settings, owner="t"
            )
        assert again.status == "not_modified"
    assert _statement_kinds(first) == [
        "UPDATE feeds",
        "SELECT feeds",
        "INSERT entries",
        "UPDATE feeds",
        "INSERT feed_polls",
    ]
    assert _statement_kinds(second) == [
        "UPDATE feeds",
        "SELECT feed_polls",
        "SELECT feeds",
        "UPDATE feeds",
        "INSERT feed_polls",
    ]
    feed = _feed(feed_id)
    assert (feed.lease_owner, feed.lease_until) == (None, None)
    assert feed.etag == '"v1"'


def test_due_query_uses_the_index_and_batches_10k_feeds(sqlite_url: str) -> None:
    """10,000 feeds: the due query walks ix_feeds_due, claims a batch, and a second tick
    (beat firing twice) does not claim the same feeds again."""
    now = utcnow()
    rows = [
        {"name": f"f{n}", "url": f"https://feeds{n % 97}.example/{n}.xml", "tags": [],
         "enabled": n % 10 != 0, "state": "healthy", "conditional_get": True, "error_count": 0,
         "next_poll_at": now - timedelta(seconds=n) if n % 2 else now + timedelta(hours=1),
         "created_at": now, "updated_at": now}
        for n in range(10_000)
    ]  # fmt: skip
    with session_scope() as session:
        session.execute(sa.insert(Feed), rows)
    due_total = sum(1 for r in rows if r["enabled"] and r["next_poll_at"] <= now)
    with session_scope() as session:
        query = (
            select(Feed.id)
            .where(col(Feed.enabled).is_(True))
            .where(col(Feed.next_poll_at) <= now)
            .order_by(col(Feed.next_poll_at))
            .limit(500)
        )
        compiled = query.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        plan = " ".join(
            str(r[-1]) for r in session.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        )
    assert "ix_feeds_due" in plan, plan
    assert "SCAN feeds" not in plan.replace("SCAN feeds USING", "")
    claimed: list[int] = []
    while True:
        with session_scope() as session:
            batch = store.due_feed_ids(session, now=now, limit=500, claim_seconds=300)
        if not batch:
            break
        assert len(batch) <= 500
        claimed += batch
    assert len(claimed) == len(set(claimed)) == due_total
