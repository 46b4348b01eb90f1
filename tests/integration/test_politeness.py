"""Per-host politeness with real Redis: token bucket, pauses, robots.txt, and two workers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import redis as redis_lib
from sqlmodel import select

from tests.integration.helpers import (
    SEEDS,
    dripping_page,
    processed,
    rss,
    running_celery,
    wait_stored,
    wait_until,
    worker_env,
)
from tests.support.factories import add_feed
from worker.breaker import BreakerPolicy
from worker.db import session_scope
from worker.errors import PermanentError, TransientError
from worker.fetch import Fetcher, FetchPolicy
from worker.localweb import LocalWeb
from worker.models import Article
from worker.politeness import HostRate, HostRates, RedisHostLimiter, RobotsCache

pytestmark = pytest.mark.integration

AGENT = "ukraine-security-ingest/0.1 (+https://example.invalid/contact)"
POLICY = FetchPolicy(
    user_agent=AGENT, connect_timeout=2, read_timeout=2, total_timeout=5,
    allowed_networks=("127.0.0.1/32",),
)  # fmt: skip


@pytest.fixture
def redis_client(redis_db: Callable[[], str]) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_db())
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


def _limiter(client: redis_lib.Redis, prefix: str, **kw: float) -> RedisHostLimiter:
    rates = HostRates(HostRate(2.0, 1), {"slow.example": HostRate(0.1, 1)})
    return RedisHostLimiter(client, rates, max_wait=kw.get("max_wait", 30.0), prefix=prefix)


def test_token_bucket_reserves_slots_at_the_configured_rate(
    redis_client: redis_lib.Redis, prefix: str
) -> None:
    """Rate 2/s, burst 1: slots are handed out 0.5 s apart, atomically, by Redis."""
    limiter = _limiter(redis_client, prefix)
    waits = [limiter.reserve("news.example")[1] for _ in range(5)]
    assert waits[0] == 0
    for n, wait in enumerate(waits):
        assert n * 0.5 - 0.05 <= wait <= n * 0.5 + 0.001
    # Another host has its own bucket.
    assert limiter.reserve("other.example") == (True, 0.0)


def test_two_limiters_share_one_bucket(redis_client: redis_lib.Redis, prefix: str) -> None:
    """Two workers (two clients) draw from the same per-host bucket."""
    first, second = _limiter(redis_client, prefix), _limiter(redis_client, prefix)
    client2 = redis_lib.Redis(connection_pool=redis_client.connection_pool)
    second = RedisHostLimiter(client2, first.rates, prefix=prefix)
    _granted, w1 = first.reserve("news.example")
    _granted, w2 = second.reserve("news.example")
    _granted, w3 = first.reserve("news.example")
    assert w1 == 0
    assert 0.4 <= w2 <= 0.5
    assert 0.9 <= w3 <= 1.0


def test_waits_beyond_max_wait_are_refused_not_queued(
    redis_client: redis_lib.Redis, prefix: str
) -> None:
    """A slot further out than max_wait is not reserved: the caller retries later."""
    limiter = _limiter(redis_client, prefix, max_wait=5.0)
    assert limiter.reserve("slow.example") == (True, 0.0)  # 0.1/s: next slot in 10 s
    granted, wait = limiter.reserve("slow.example")
    assert not granted
    assert 9 <= wait <= 10
    with pytest.raises(TransientError) as info:
        limiter.acquire("slow.example")
    assert info.value.error_class == "host_throttled"
    # Refusals reserved nothing: the slot 10 s out is still the next one.
    assert 9 <= limiter.reserve("slow.example")[1] <= 10


def test_pause_holds_every_worker_back(redis_client: redis_lib.Redis, prefix: str) -> None:
    limiter = _limiter(redis_client, prefix, max_wait=600)
    limiter.pause("news.example", 120)
    other_worker = _limiter(redis_client, prefix, max_wait=600)
    granted, wait = other_worker.reserve("news.example")
    assert granted
    assert 119 <= wait <= 120
    # A shorter pause never shortens a longer one.
    limiter.pause("news.example", 5)
    assert other_worker.reserve("news.example")[1] >= 119


def test_parent_domain_rate_applies_to_subdomains() -> None:
    rates = HostRates(HostRate(1.0, 3), {"example.com": 0.5, "api.example.com": HostRate(5, 2)})
    assert rates.for_host("www.example.com") == HostRate(0.5, 3)
    assert rates.for_host("api.example.com") == HostRate(5, 2)
    assert rates.for_host("example.org") == HostRate(1.0, 3)


def test_429_from_one_worker_pauses_the_host_for_another(
    redis_client: redis_lib.Redis, prefix: str
) -> None:
    """Worker A gets 429 Retry-After: 90; worker B then refuses to contact that host."""

    def busy(h: BaseHTTPRequestHandler) -> None:
        h.send_response(429)
        h.send_header("Retry-After", "90")
        h.send_header("Content-Length", "0")
        h.end_headers()

    with LocalWeb() as web:
        web.routes["/busy"] = busy
        worker_a = Fetcher(POLICY, limiter=_limiter(redis_client, prefix, max_wait=10))
        worker_b = Fetcher(POLICY, limiter=_limiter(redis_client, prefix, max_wait=10))
        with worker_a, worker_b:
            with pytest.raises(TransientError):
                worker_a.get(web.url("busy"))
            with pytest.raises(TransientError) as info:
                worker_b.get(web.url("page.html"))
        assert info.value.error_class == "host_paused"
        assert [path for path, _t in web.requests] == ["/busy"]


def test_breaker_pauses_a_dripping_host_for_every_worker_until_a_probe_is_answered(
    redis_client: redis_lib.Redis, prefix: str
) -> None:
    """Two timeouts (one per worker) open the host's breaker: both workers are refused at
    once, with the reason; after the pause one request probes while the other waits,
    and the probe's answer closes the breaker."""
    breaker = BreakerPolicy(failures=2, window=30.0, pause=1.5)
    drip = FetchPolicy(
        user_agent=AGENT, connect_timeout=2, read_timeout=2, total_timeout=0.5,
        allowed_networks=("127.0.0.1/32",),
    )  # fmt: skip
    limiters = [
        RedisHostLimiter(
            redis_client, HostRates(HostRate(100.0, 10), {}), prefix=prefix, breaker=breaker
        )
        for _ in range(2)
    ]
    with LocalWeb() as web:
        web.routes["/drip"] = dripping_page(b"x" * 4096, chunk=16, every=0.1)
        web.add_page("page.html", b"<html><body>ok</body></html>")
        worker_a, worker_b = (Fetcher(drip, limiter=limiter) for limiter in limiters)
        with worker_a, worker_b:
            for fetcher in (worker_a, worker_b):
                with pytest.raises(TransientError) as info:
                    fetcher.get(web.url("drip"))
                assert info.value.error_class == "timeout"
            for fetcher in (worker_a, worker_b):
                with pytest.raises(TransientError) as info:
                    fetcher.get(web.url("page.html"))
                assert info.value.error_class == "host_paused"
                assert "circuit breaker: 2 timeouts or 5xx within 30s" in str(info.value)
            (paused,) = limiters[1].paused_hosts()
            assert paused.host == "127.0.0.1"
            assert 0 < paused.seconds_left <= 1.5
            assert "circuit breaker" in paused.reason
            assert [p for p, _t in web.requests] == ["/drip", "/drip"]

            time.sleep(1.6)  # the pause is over: half-open
            assert limiters[0].acquire("127.0.0.1") is True  # worker A holds the probe
            with pytest.raises(TransientError) as info:
                worker_b.get(web.url("page.html"))
            assert "waiting for the probe" in str(info.value)
            limiters[0].recovered("127.0.0.1")  # A's probe was answered
            assert worker_b.get(web.url("page.html")).status == 200
            assert worker_a.get(web.url("page.html")).status == 200
            assert limiters[0].paused_hosts() == []


ROBOTS = b"""User-agent: *
Disallow: /private/

User-agent: ukraine-security-ingest
Disallow: /no-bots/
"""


def test_robots_txt_is_honoured_and_cached_in_redis(
    redis_client: redis_lib.Redis, prefix: str
) -> None:
    """Disallowed pages raise robots_disallowed; robots.txt is fetched once for two workers."""
    with LocalWeb() as web:
        web.add_page("robots.txt", ROBOTS, "text/plain")
        web.add_page("news/story.html", b"<html><body>ok</body></html>")
        workers = [
            Fetcher(POLICY, robots=RobotsCache(AGENT, client=redis_client, prefix=prefix))
            for _ in range(2)
        ]
        for fetcher in workers:
            with pytest.raises(PermanentError) as info:
                fetcher.get(web.url("no-bots/b.html"), check_robots=True)
            assert info.value.error_class == "robots_disallowed"
            assert fetcher.get(web.url("news/story.html"), check_robots=True).status == 200
            # RFC 9309: the group naming our product token replaces the `*` group.
            with pytest.raises(PermanentError) as info:
                fetcher.get(web.url("private/a.html"), check_robots=True)
            assert info.value.error_class == "http_4xx"
            # Feeds (check_robots=False) are not subject to robots.txt.
            with pytest.raises(PermanentError) as info:
                fetcher.get(web.url("private/feed.xml"))
            assert info.value.error_class == "http_4xx"
            fetcher.close()
        robots_fetches = [p for p, _t in web.requests if p == "/robots.txt"]
        assert robots_fetches == ["/robots.txt"]
        assert [p for p, _t in web.requests if p.startswith("/no-bots")] == []


def test_star_group_applies_when_no_group_names_us() -> None:
    with LocalWeb() as web, Fetcher(POLICY, robots=RobotsCache(AGENT)) as fetcher:
        web.add_page("robots.txt", b"User-agent: *\nDisallow: /private/\n", "text/plain")
        with pytest.raises(PermanentError) as info:
            fetcher.get(web.url("private/a.html"), check_robots=True)
        assert info.value.error_class == "robots_disallowed"


@pytest.mark.parametrize(("status", "outcome"), [(404, "allowed"), (500, "unavailable")])
def test_robots_txt_errors(status: int, outcome: str) -> None:
    """RFC 9309: a 4xx robots.txt means no rules; a 5xx means try later, not fetch anyway."""

    def robots(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    with LocalWeb() as web, Fetcher(POLICY, robots=RobotsCache(AGENT)) as fetcher:
        web.routes["/robots.txt"] = robots
        web.add_page("a.html", b"<html><body>ok</body></html>")
        if outcome == "allowed":
            assert fetcher.get(web.url("a.html"), check_robots=True).status == 200
        else:
            with pytest.raises(TransientError) as info:
                fetcher.get(web.url("a.html"), check_robots=True)
            assert info.value.error_class == "robots_unavailable"
            assert "/a.html" not in [p for p, _t in web.requests]


def _max_in_window(times: list[float], window: float) -> int:
    """Most requests seen in any half-open window [t, t + window) starting at a request."""
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_two_celery_workers_share_the_per_host_limit(
    sqlite_url: str,
    broker_url: str,
    redis_db: Callable[[], str],
    web: LocalWeb,
    tmp_path: Path,
) -> None:
    """Two `ingest worker` processes fetching 20 pages of one host at 2/s, burst 1."""
    env = worker_env(
        sqlite_url,
        broker_url,
        INGEST_REDIS_URL=redis_db(),
        INGEST_PER_HOST_RATE="2",
        INGEST_PER_HOST_BURST="1",
        INGEST_RATE_LIMIT_MAX_WAIT_SECONDS="60",
    )
    items = []
    for n in range(20):
        path = f"pages/{n}.html"
        web.add_page(path, f"<html><body><h1>Story {n}</h1><p>Text {n}.</p></body></html>")
        items.append({"title": f"Story {n}", "link": web.url(path), "guid": f"s{n}",
                      "description": f"Summary of story {n}."})  # fmt: skip
    web.add_page("feed.xml", rss(items))
    add_feed(name="one-host", url=web.url("feed.xml"))

    # Both workers are ready before beat starts, so both take a share of the pages.
    with running_celery(env, tmp_path, workers=2, beat=True) as celery:
        wait_until(lambda: processed(20), timeout=120, what="20 pages fetched")
    times = sorted(t for path, t in web.requests)
    page_requests = [p for p, _t in web.requests if p.startswith("/pages/")]
    logs = [w.log() for w in celery.workers]
    assert len(page_requests) == 20
    assert all("process_entry" in log for log in logs), "both workers must have fetched pages"
    span = times[-1] - times[0]
    one_second, four_seconds = _max_in_window(times, 1.0), _max_in_window(times, 4.0)
    print(
        f"\n{len(times)} requests in {span:.2f}s ({(len(times) - 1) / span:.2f}/s); "
        f"max in 1 s: {one_second}, max in 4 s: {four_seconds}"
    )
    # Token bucket: at most burst + rate * T in any window of T seconds; the
    # slots are exact at the Redis clock, +1 tolerates arrival jitter.
    assert one_second <= 2 + 1 + 1
    assert four_seconds <= 1 + 2 * 4 + 1
    # And the limiter really bound: n requests need at least (n - burst) / rate.
    assert span >= (len(times) - 1 - 1) / 2 * 0.9


class SickHost:
    """Article pages that drip (each fetch runs into the total timeout) until
    :meth:`recover`, then answer at once; how long each dripping fetch held its
    client is recorded."""

    def __init__(self, web: LocalWeb, html: bytes) -> None:
        self.web = web
        self.html = html
        self.sick = True
        self.drips: list[float] = []

    def page(self, n: int) -> str:
        body = self.html.replace(b"macron-trump-security-guarantees", f"sick-{n}".encode())
        drip = dripping_page(body, chunk=64, every=0.1)

        def route(handler: BaseHTTPRequestHandler) -> None:
            if not self.sick:
                handler.send_response(200)
                handler.send_header("Content-Type", "text/html; charset=utf-8")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)
                return
            started = time.monotonic()
            drip(handler)  # returns once the client has given up
            self.drips.append(time.monotonic() - started)

        self.web.routes[f"/sick/{n}.html"] = route
        return self.web.url(f"sick/{n}.html")

    def recover(self) -> None:
        self.sick = False


def test_a_dripping_host_costs_k_timeouts_and_its_entries_wait_for_it(
    sqlite_url: str, broker_url: str, web: LocalWeb, tmp_path: Path
) -> None:
    """Eight entries on a host whose pages drip: the breaker opens after K = 2 timeouts,
    the other entries are deferred (not failed, attempts not counted), and once the host
    recovers the probe closes the breaker and every entry is stored. Slot time spent on
    the host: at most K + (slots - 1) full timeouts, not 6 per entry."""
    k, slots, timeout, pause = 2, 2, 1.0, 3.0
    host = SickHost(web, (SEEDS / "seed-article.html").read_bytes())
    items = [{"title": f"Sick {n}", "link": host.page(n), "guid": f"sick-{n}"} for n in range(8)]
    web.add_page("feed.xml", rss(items))
    add_feed(name="sick-host", url=web.url("feed.xml"))
    env = worker_env(
        sqlite_url,
        broker_url,
        INGEST_TOTAL_TIMEOUT=str(timeout),
        INGEST_HOST_BREAKER_FAILURES=str(k),
        INGEST_HOST_BREAKER_WINDOW_SECONDS="30",
        INGEST_HOST_BREAKER_PAUSE_SECONDS=str(pause),
        INGEST_RETRY_BASE_SECONDS="0.5",
    )

    with running_celery(env, tmp_path, beat=True, concurrency=slots) as celery:
        wait_until(
            lambda: celery.events().named("host_breaker_open"), timeout=60, what="breaker open"
        )
        opened_at = time.monotonic()
        host.recover()
        entries = wait_stored(8, timeout=60)
        events = celery.events()
    stored_at = time.monotonic()

    # The breaker opened after K timeouts, and said why.
    opened = events.expect("host_breaker_open", host="127.0.0.1")
    assert f"circuit breaker: {k} timeouts or 5xx within 30s" in opened["reason"]
    assert "timeout" in opened["reason"]
    # Slot time: every dripping fetch ended at the total timeout, and there were at most
    # K of them plus one per other slot already fetching when the breaker opened.
    print(f"\ndripping fetches: {len(host.drips)}, {sum(host.drips):.1f} s")
    assert k <= len(host.drips) <= k + slots - 1
    assert all(held < timeout + 1.0 for held in host.drips)
    # The other entries were deferred until the pause ended, not failed or retried.
    deferred = {e["entry_id"] for e in events.named("entry_deferred")}
    assert len(deferred) >= 8 - len(host.drips)
    assert not events.named("entry_failed")
    assert stored_at - opened_at >= pause - 0.5  # nothing was stored before the pause ended
    events.expect("host_breaker_closed", host="127.0.0.1")
    # Every entry is stored with its page, and only fetches that went out were attempts.
    with session_scope() as session:
        articles = session.exec(select(Article)).all()
    assert len(articles) == 8
    assert all(a.extraction_method == "trafilatura" for a in articles)
    assert sum(e.attempts for e in entries) == 8 + len(host.drips)
    assert all(e.error is None for e in entries)
