"""Per-host politeness shared by every worker: a rate limiter and a robots.txt cache.

Many worker processes on many hosts fetch from the same few news sites, so a
per-process limit would multiply by the number of workers. The limiter is a
token bucket per host kept in Redis and updated by one Lua script, which makes
"refill, take a token or reserve a slot, and report how long to wait" a single
atomic step for all workers, timed by the Redis server's clock (so workers'
clocks need not agree). Callers *reserve* their slot and sleep until it comes,
instead of polling, so a queue of requests drains at exactly the configured
rate. A host that answered 429/503 with Retry-After is paused for everybody.

Without Redis (the embedded demo mode with the SQLAlchemy broker) the same
algorithm runs in-process; it then only limits one worker process.

robots.txt is fetched once per host through the same fetcher (so it is rate
limited and SSRF-checked too), cached in Redis (or in-process) with a TTL,
and consulted for article pages only: feeds are explicitly subscribed to.
"""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog

from .errors import IngestError, PermanentError, TransientError
from .fetch import Fetcher, FetchPolicy

if TYPE_CHECKING:
    from .settings import Settings

log = structlog.get_logger(__name__)

KEY_PREFIX = "ingest:polite"
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB
ROBOTS_ACCEPT = "text/plain, */*;q=0.5"
_ALLOW_ALL = ""

# KEYS[1] bucket hash {tokens, ts}; KEYS[2] pause-until (seconds, float as string)
# ARGV: rate (tokens/s), burst, max_wait (s), ttl (s)
# Returns {granted (0/1), wait_ms}. Granted means a slot is reserved: sleep
# wait_ms, then go. Not granted means waiting would exceed max_wait.
_TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause_until = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local start = now
if pause_until > now then
  start = pause_until
end
if start > ts then
  tokens = math.min(burst, tokens + (start - ts) * rate)
  ts = start
end
tokens = tokens - 1
local wait = (ts - now)
if tokens < 0 then
  wait = wait + (-tokens) / rate
end
if wait > max_wait then
  return {0, math.ceil(wait * 1000)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], ttl)
return {1, math.ceil(wait * 1000)}
"""

# KEYS[1] pause-until; ARGV[1] seconds. Only ever extends a pause.
_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local want = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if want > cur then
  redis.call('SET', KEYS[1], tostring(want), 'EX', math.ceil(tonumber(ARGV[1])) + 1)
end
return 1
"""


@dataclass(frozen=True)
class HostRate:
    rate: float  # requests per second
    burst: int


class HostRates:
    """Per-host rates: an exact host or any parent domain in the table, else the default."""

    def __init__(self, default: HostRate, overrides: Mapping[str, float | HostRate]) -> None:
        self.default = default
        self.overrides = {
            k.lower().strip("."): v if isinstance(v, HostRate) else HostRate(v, default.burst)
            for k, v in overrides.items()
        }

    def for_host(self, host: str) -> HostRate:
        parts = host.lower().split(".")
        for i in range(len(parts)):
            found = self.overrides.get(".".join(parts[i:]))
            if found is not None:
                return found
        return self.default


def _throttled(host: str, wait: float) -> TransientError:
    return TransientError(
        f"host {host} is throttled for {wait:.1f}s",
        url=None,
        error_class="host_throttled",
        retry_after=wait,
    )


class RedisHostLimiter:
    """Token bucket per host in Redis, shared by every worker process."""

    def __init__(
        self,
        client: Any,
        rates: HostRates,
        *,
        max_wait: float = 30.0,
        prefix: str = KEY_PREFIX,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._redis = client
        self.rates = rates
        self.max_wait = max_wait
        self.prefix = prefix
        self._sleep = sleep
        self._bucket = client.register_script(_TOKEN_BUCKET_LUA)
        self._pause = client.register_script(_PAUSE_LUA)

    def _keys(self, host: str) -> list[str]:
        return [f"{self.prefix}:bucket:{host}", f"{self.prefix}:pause:{host}"]

    def reserve(self, host: str) -> tuple[bool, float]:
        """Reserve the next slot for ``host``: ``(granted, seconds_to_wait)``."""
        rate = self.rates.for_host(host)
        ttl = int(max(60.0, rate.burst / rate.rate * 2 + self.max_wait))
        granted, wait_ms = self._bucket(
            keys=self._keys(host), args=[rate.rate, rate.burst, self.max_wait, ttl]
        )
        return bool(int(granted)), int(wait_ms) / 1000.0

    def acquire(self, host: str) -> None:
        try:
            granted, wait = self.reserve(host)
        except Exception as exc:  # redis.RedisError and connection failures
            raise TransientError(
                f"rate limiter unavailable: {exc}", error_class="limiter_unavailable"
            ) from exc
        if not granted:
            raise _throttled(host, wait)
        if wait > 0:
            self._sleep(wait)

    def pause(self, host: str, seconds: float) -> None:
        try:
            self._pause(keys=[self._keys(host)[1]], args=[max(seconds, 0.001)])
        except Exception as exc:  # a lost pause is not worth failing the fetch over
            log.warning("host_pause_failed", host=host, error=str(exc))
            return
        log.info("host_paused", host=host, seconds=seconds)


class LocalHostLimiter:
    """The same token bucket, in process: for the embedded mode without Redis."""

    def __init__(
        self,
        rates: HostRates,
        *,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rates = rates
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._paused: dict[str, float] = {}

    def reserve(self, host: str) -> tuple[bool, float]:
        rate = self.rates.for_host(host)
        with self._lock:
            now = self._clock()
            tokens, ts = self._buckets.get(host, (float(rate.burst), now))
            start = max(now, self._paused.get(host, 0.0))
            if start > ts:
                tokens = min(float(rate.burst), tokens + (start - ts) * rate.rate)
                ts = start
            tokens -= 1
            wait = ts - now + (-tokens / rate.rate if tokens < 0 else 0.0)
            if wait > self.max_wait:
                return False, wait
            self._buckets[host] = (tokens, ts)
            return True, wait

    def acquire(self, host: str) -> None:
        granted, wait = self.reserve(host)
        if not granted:
            raise _throttled(host, wait)
        if wait > 0:
            self._sleep(wait)

    def pause(self, host: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._paused[host] = max(self._paused.get(host, 0.0), until)
        log.info("host_paused", host=host, seconds=seconds)


class RobotsCache:
    """robots.txt per scheme+host, fetched through the fetcher and cached with a TTL.

    RFC 9309 semantics: a 4xx (including 404) means no rules; a 5xx or a
    network error means "don't know", which we surface as a TransientError so
    the page is tried again later rather than fetched against the site's will.
    """

    def __init__(
        self,
        user_agent: str,
        *,
        ttl: float = 24 * 3600,
        client: Any | None = None,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Match robots groups on the product token ("ukraine-security-ingest"),
        # which is what site owners write in their User-agent lines.
        self.agent = user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"
        self.ttl = ttl
        self._redis = client
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, urllib.robotparser.RobotFileParser]] = {}

    def check(self, url: str, *, fetcher: Fetcher) -> None:
        parser = self._parser(url, fetcher)
        if not parser.can_fetch(self.agent, url):
            raise PermanentError(
                "disallowed by robots.txt", url=url, error_class="robots_disallowed"
            )

    def _parser(self, url: str, fetcher: Fetcher) -> urllib.robotparser.RobotFileParser:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        now = self._clock()
        with self._lock:
            cached = self._local.get(origin)
        if cached is not None and cached[0] > now:
            return cached[1]
        text = self._shared_get(origin)
        if text is None:
            text = self._download(origin, fetcher)
            self._shared_set(origin, text)
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(text.splitlines())
        # The in-process copy lives a short while so Redis is asked at most
        # once a minute per host and worker; the shared copy carries the TTL.
        local_ttl = min(self.ttl, 60.0) if self._redis is not None else self.ttl
        with self._lock:
            self._local[origin] = (now + local_ttl, parser)
        return parser

    def _download(self, origin: str, fetcher: Fetcher) -> str:
        robots_url = f"{origin}/robots.txt"
        try:
            result = fetcher.get(robots_url, accept=ROBOTS_ACCEPT, max_bytes=ROBOTS_MAX_BYTES)
        except TransientError as exc:
            raise TransientError(
                f"robots.txt unavailable: {exc}",
                url=robots_url,
                status=exc.status,
                error_class="robots_unavailable",
                retry_after=exc.retry_after,
            ) from exc
        except PermanentError as exc:
            # 4xx, a redirect loop, an HTML error page: RFC 9309 says no rules.
            log.info("robots_unavailable_allow_all", url=robots_url, error=str(exc))
            return _ALLOW_ALL
        text = result.body.decode("utf-8", "replace")
        if "<html" in text[:512].lower():
            return _ALLOW_ALL  # an HTML page served for every path, not robots rules
        return text

    def _key(self, origin: str) -> str:
        return f"{self.prefix}:robots:{origin}"

    def _shared_get(self, origin: str) -> str | None:
        if self._redis is None:
            return None
        try:
            value = self._redis.get(self._key(origin))
        except Exception as exc:
            log.warning("robots_cache_unavailable", error=str(exc))
            return None
        if value is None:
            return None
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    def _shared_set(self, origin: str, text: str) -> None:
        if self._redis is None:
            return
        try:
            self._redis.set(self._key(origin), text.encode("utf-8"), ex=int(self.ttl))
        except Exception as exc:
            log.warning("robots_cache_unavailable", error=str(exc))


@dataclass(frozen=True)
class Politeness:
    limiter: RedisHostLimiter | LocalHostLimiter
    robots: RobotsCache | None
    shared: bool  # True when backed by Redis (all workers), False when in-process


def build_politeness(
    *,
    redis_url: str | None,
    user_agent: str,
    default_rate: float,
    default_burst: int,
    host_rates: Mapping[str, float | HostRate],
    max_wait: float,
    respect_robots: bool,
    robots_ttl: float,
    prefix: str = KEY_PREFIX,
) -> Politeness:
    """Limiter and robots cache backed by Redis when there is one, else in-process."""
    rates = HostRates(HostRate(default_rate, default_burst), host_rates)
    client: Any | None = None
    if redis_url:
        import redis

        client = redis.Redis.from_url(
            redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
    limiter: RedisHostLimiter | LocalHostLimiter
    if client is not None:
        limiter = RedisHostLimiter(client, rates, max_wait=max_wait, prefix=prefix)
    else:
        log.info("politeness_in_process", reason="no Redis configured; limits are per process")
        limiter = LocalHostLimiter(rates, max_wait=max_wait)
    robots = (
        RobotsCache(user_agent, ttl=robots_ttl, client=client, prefix=prefix)
        if respect_robots
        else None
    )
    return Politeness(limiter=limiter, robots=robots, shared=client is not None)


def is_throttle(exc: IngestError) -> bool:
    """The limiter, not the server, refused: reschedule, don't count as a failure."""
    return exc.error_class in ("host_throttled", "limiter_unavailable")


def politeness_from_settings(settings: Settings) -> Politeness:
    rates: dict[str, float | HostRate] = {}
    for host, value in settings.host_rates.items():
        if isinstance(value, dict):
            rates[host] = HostRate(
                float(value["rate"]), int(value.get("burst", settings.per_host_burst))
            )
        else:
            rates[host] = float(value)
    return build_politeness(
        redis_url=settings.effective_redis_url,
        user_agent=settings.user_agent,
        default_rate=settings.per_host_rate,
        default_burst=settings.per_host_burst,
        host_rates=rates,
        max_wait=settings.rate_limit_max_wait_seconds,
        respect_robots=settings.respect_robots,
        robots_ttl=float(settings.robots_ttl_seconds),
    )


def build_fetcher(settings: Settings) -> Fetcher:
    """The fetcher a worker process uses: settings' limits plus shared politeness."""
    polite = politeness_from_settings(settings)
    return Fetcher(
        FetchPolicy.from_settings(settings), limiter=polite.limiter, robots=polite.robots
    )
