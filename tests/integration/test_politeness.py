"""Per-host politeness with real Redis: token bucket, pauses, robots.txt, and two workers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import redis as redis_lib

from tests.integration.helpers import processed, rss, running_celery, wait_until, worker_env
from tests.support.factories import add_feed
from worker.errors import PermanentError, TransientError
from worker.fetch import Fetcher, FetchPolicy
from worker.localweb import LocalWeb
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
