"""robots.txt per host: fetched once through the fetcher, cached in Redis (or in process).

Consulted for article pages only: feeds are explicitly subscribed to. robots.txt
is fetched through the same :class:`~worker.fetch.Fetcher` as any page, so it is
rate limited, paused with its host and SSRF-checked too.
"""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import structlog

from .errors import PermanentError, TransientError, is_throttle
from .fetch import Fetcher
from .host_limits import KEY_PREFIX

log = structlog.get_logger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB
ROBOTS_ACCEPT = "text/plain, */*;q=0.5"
_ALLOW_ALL = ""


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
            if is_throttle(exc):
                raise  # our own limiter (or a paused host) said "later": not robots' failure
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
