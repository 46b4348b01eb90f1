"""Per-host politeness shared by every worker: a rate limiter, host pauses with a circuit
breaker, and the robots.txt cache (:mod:`worker.robots`).

Many worker processes on many hosts fetch from the same few news sites, so a
per-process limit would multiply by the number of workers. The limiter is a
token bucket per host kept in Redis and updated by one Lua script, which makes
"refill, take a token or reserve a slot, and report how long to wait" a single
atomic step for all workers, timed by the Redis server's clock (so workers'
clocks need not agree). Callers *reserve* their slot and sleep until it comes,
instead of polling, so a queue of requests drains at exactly the configured
rate.

A host is paused for everybody when it answers 429/503 with Retry-After, and
when its circuit breaker opens: too many timeouts or 5xx from it within a window
(the decisions are :mod:`worker.breaker`; the failures are counted in Redis, so
every worker's failures count). A paused host's requests are refused at once
(``host_paused``), and callers defer their work until the pause ends. After a
breaker's pause, one request at a time goes (the probe, under a lease in Redis)
until one is answered. Why each host is paused is kept next to the pause, for
``ingest stats``.

Without Redis (the embedded demo mode with the SQLAlchemy broker) the same
algorithm runs in-process; it then only limits one worker process.

This module builds them from settings. The limiter is :mod:`worker.host_limits`
(its shared parts, and the in-process one) and :mod:`worker.redis_limits`; the
robots.txt cache is :mod:`worker.robots`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from .breaker import BreakerPolicy
from .errors import is_throttle
from .fetch import Fetcher, FetchPolicy
from .host_limits import (
    BREAKER_OFF,
    DEFAULT_PROBE_LEASE,
    KEY_PREFIX,
    HostPause,
    HostRate,
    HostRates,
    LocalHostLimiter,
)
from .redis_limits import RedisHostLimiter
from .robots import ROBOTS_ACCEPT, ROBOTS_MAX_BYTES, RobotsCache

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "KEY_PREFIX",
    "ROBOTS_ACCEPT",
    "ROBOTS_MAX_BYTES",
    "HostPause",
    "HostRate",
    "HostRates",
    "LocalHostLimiter",
    "Politeness",
    "RedisHostLimiter",
    "RobotsCache",
    "build_fetcher",
    "build_politeness",
    "is_throttle",
    "politeness_from_settings",
    "read_paused_hosts",
]

log = structlog.get_logger(__name__)


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
    breaker: BreakerPolicy = BREAKER_OFF,
    probe_lease: float = DEFAULT_PROBE_LEASE,
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
        limiter = RedisHostLimiter(
            client,
            rates,
            max_wait=max_wait,
            prefix=prefix,
            breaker=breaker,
            probe_lease=probe_lease,
        )
    else:
        log.info("politeness_in_process", reason="no Redis configured; limits are per process")
        limiter = LocalHostLimiter(
            rates, max_wait=max_wait, breaker=breaker, probe_lease=probe_lease
        )
    robots = (
        RobotsCache(user_agent, ttl=robots_ttl, client=client, prefix=prefix)
        if respect_robots
        else None
    )
    return Politeness(limiter=limiter, robots=robots, shared=client is not None)


def breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(
        failures=settings.host_breaker_failures,
        window=settings.host_breaker_window_seconds,
        pause=settings.host_breaker_pause_seconds,
    )


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
        breaker=breaker_policy(settings),
        # A probe may take as long as any fetch; after that another request may probe.
        probe_lease=settings.total_timeout + settings.connect_timeout,
    )


def read_paused_hosts(settings: Settings) -> list[HostPause] | None:
    """The hosts paused for every worker, for operators; None when Redis does not answer.

    Without Redis (the embedded mode) each worker process keeps its own pauses, which
    no other process can read: nothing is listed.
    """
    url = settings.effective_redis_url
    if not url:
        return []
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return RedisHostLimiter(client, HostRates(HostRate(1.0, 1), {})).paused_hosts()
    except redis.RedisError as exc:
        log.warning("paused_hosts_unavailable", error=str(exc))
        return None
    finally:
        client.close()


def build_fetcher(settings: Settings) -> Fetcher:
    """The fetcher a worker process uses: settings' limits plus shared politeness."""
    polite = politeness_from_settings(settings)
    return Fetcher(
        FetchPolicy.from_settings(settings), limiter=polite.limiter, robots=polite.robots
    )
