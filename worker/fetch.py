"""HTTP fetching: the only module that talks to other people's servers.

Every request is bounded: connect/read/total timeouts, a body-size cap enforced
while streaming and counted on *decompressed* bytes (we inflate gzip/deflate
ourselves in small steps with :mod:`worker.decoding`, so a gzip bomb stops at
the cap without ever being inflated in memory), a redirect limit with the SSRF
guard (:mod:`worker.ssrf`) re-checked on every hop, and content-type checks so
a feed URL that returns a PDF fails clearly.

Politeness is pluggable: a :class:`HostLimiter` is asked before every request
(including each redirect hop and robots.txt itself), told about 429/503
answers so it can pause the host for every worker, and told about timeouts and
5xx answers, which open the host's circuit breaker (:mod:`worker.breaker`); a
:class:`RobotsChecker` vets article URLs. Both live in :mod:`worker.politeness`;
the fetcher only knows these small protocols. Errors come out typed (:mod:`worker.errors`).
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from .decoding import BoundedDecoder, charset_from_content_type, looks_binary
from .errors import IngestError, PermanentError, TransientError
from .http1 import ConnectionPool, DeadlineExceededError, Response
from .ssrf import BlockedAddressError, PinnedBackend, PinnedTransport, check_url_allowed

if TYPE_CHECKING:
    from .settings import Settings

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
# Only what we can inflate with a bounded decoder; br/zstd are never offered.
ACCEPT_ENCODING = "gzip, deflate"

FEED_CONTENT_TYPES = ("xml", "rss", "atom", "rdf", "text/plain", "octet-stream")
HTML_CONTENT_TYPES = ("text/html", "application/xhtml", "text/plain")
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_REDIRECTS = {301, 308}
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
# Statuses after which the whole host is paused for every worker.
HOST_PAUSE_STATUSES = {429, 503}
MAX_RETRY_AFTER_SECONDS = 24 * 3600


class HostLimiter(Protocol):
    """Rate limit shared by all workers; see :mod:`worker.politeness`."""

    def acquire(self, host: str) -> bool:
        """Block until a request to ``host`` is allowed, or raise TransientError.

        True: this request is the one probe of a host whose circuit breaker paused it;
        report how it went (:meth:`failed` or :meth:`recovered`)."""

    def pause(self, host: str, seconds: float, *, reason: str) -> None:
        """Stop every worker from requesting ``host`` for ``seconds``."""

    def failed(self, host: str, *, url: str, error_class: str, detail: str, probe: bool) -> None:
        """A request to ``host`` timed out or was answered 5xx (the breaker counts it)."""

    def recovered(self, host: str) -> None:
        """The probe after a pause was answered: close the breaker."""


class RobotsChecker(Protocol):
    def check(self, url: str, *, fetcher: Fetcher) -> None:
        """Raise PermanentError(error_class="robots_disallowed") if robots.txt forbids ``url``."""


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one kind of request; built from settings by the caller."""

    user_agent: str
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    allowed_networks: tuple[str, ...] = ()
    # A 429 without Retry-After still pauses the host this long.
    default_429_pause: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            user_agent=settings.user_agent,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            total_timeout=settings.total_timeout,
            max_bytes=settings.max_body_bytes,
            max_redirects=settings.max_redirects,
            allowed_networks=tuple(settings.allow_private_networks),
            default_429_pause=settings.host_pause_on_429_seconds,
        )


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: int
    not_modified: bool = False
    permanent_redirect_to: str | None = None
    redirects: list[tuple[int, str]] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        return charset_from_content_type(self.headers.get("content-type", ""))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_SECONDS))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(delta, 0.0), MAX_RETRY_AFTER_SECONDS))


def host_key(url: str) -> str:
    """The politeness key of a URL: its lower-cased host name, port ignored."""
    return (urlsplit(url).hostname or "").lower().rstrip(".")


class Fetcher:
    """Bounded, polite HTTP GETs with redirects handled (and re-checked) by hand."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        limiter: HostLimiter | None = None,
        robots: RobotsChecker | None = None,
        resolver: Callable[[str, int], list[str]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.limiter = limiter
        self.robots = robots
        self._resolver = resolver  # DNS (host, port) -> addresses; tests pass their own
        self._pool = ConnectionPool(
            allowed_networks=policy.allowed_networks,
            resolver=resolver,
            ssl_context=ssl_context,
            default_headers={"User-Agent": policy.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        )

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        accept: str = HTML_ACCEPT,
        etag: str | None = None,
        last_modified: str | None = None,
        expect: tuple[str, ...] | None = None,
        check_robots: bool = False,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """GET ``url`` within the policy's limits.

        ``expect`` lists content-type fragments that are acceptable; anything
        else (an image, a PDF) is a :class:`PermanentError` before the body is
        read. ``check_robots`` consults robots.txt first (article pages);
        feeds the operator subscribed to are not subject to it.
        """
        if check_robots and self.robots is not None:
            self.robots.check(url, fetcher=self)
        limit = max_bytes or self.policy.max_bytes
        started = time.monotonic()
        network_seconds = 0.0
        current = url
        redirects: list[tuple[int, str]] = []
        permanent_target: str | None = None
        all_permanent = True
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _hop in range(self.policy.max_redirects + 1):
            check_url_allowed(
                current, allowed_networks=self.policy.allowed_networks, resolver=self._resolver
            )
            probe = False
            if self.limiter is not None:
                # Waiting for our turn is politeness, not slowness of the
                # server: it does not count against the total timeout.
                probe = self.limiter.acquire(host_key(current))
            budget = self.policy.total_timeout - network_seconds
            hop_started = time.monotonic()
            try:
                status, resp_headers, body = self._one_request(
                    current, headers, budget=budget, expect=expect, limit=limit
                )
            except IngestError as exc:
                self._note_failure(current, exc, probe=probe)
                raise
            network_seconds += time.monotonic() - hop_started
            self._note_status(current, status, resp_headers, probe=probe)
            if status in REDIRECT_STATUSES:
                location = resp_headers.get("location")
                if not location:
                    raise PermanentError(
                        f"redirect {status} without Location", url=current, status=status
                    )
                target = urljoin(current, location)
                redirects.append((status, target))
                all_permanent = all_permanent and status in PERMANENT_REDIRECTS
                if all_permanent:
                    permanent_target = target
                current = target
                continue
            elapsed_ms = int((time.monotonic() - started) * 1000)
            if status == 304:
                return FetchResult(
                    url=url,
                    final_url=current,
                    status=status,
                    headers=resp_headers,
                    body=b"",
                    elapsed_ms=elapsed_ms,
                    not_modified=True,
                    permanent_redirect_to=permanent_target,
                    redirects=redirects,
                )
            self._raise_for_status(current, status, resp_headers)
            if expect and looks_binary(body):
                raise PermanentError(
                    "body is a binary file, not text",
                    url=current,
                    status=status,
                    error_class="bad_content_type",
                )
            return FetchResult(
                url=url,
                final_url=current,
                status=status,
                headers=resp_headers,
                body=body,
                elapsed_ms=elapsed_ms,
                permanent_redirect_to=permanent_target,
                redirects=redirects,
            )
        raise PermanentError(
            f"too many redirects (> {self.policy.max_redirects})",
            url=url,
            error_class="redirect_loop",
        )

    def _note_status(self, url: str, status: int, headers: dict[str, str], *, probe: bool) -> None:
        """Tell the limiter when a host asks every one of us to slow down, and how the
        host answered (a 5xx counts towards its circuit breaker; any other answer to a
        probe closes the breaker)."""
        if self.limiter is None:
            return
        host = host_key(url)
        if status in HOST_PAUSE_STATUSES:
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is None and status == 429:
                retry_after = self.policy.default_429_pause
            if retry_after:
                self.limiter.pause(
                    host, retry_after, reason=f"HTTP {status} (Retry-After {retry_after:g}s)"
                )
        if status >= 500:
            detail = f"HTTP {status} url={url}"
            self.limiter.failed(host, url=url, error_class="http_5xx", detail=detail, probe=probe)
        elif probe:
            self.limiter.recovered(host)

    def _note_failure(self, url: str, exc: IngestError, *, probe: bool) -> None:
        """A timeout counts towards the host's circuit breaker. A refusal after the host
        answered (too large, wrong type) still closes it, if this was its probe; a
        network error or our own SSRF refusal says nothing about the host."""
        if self.limiter is None:
            return
        host = host_key(url)
        if isinstance(exc, TransientError):
            self.limiter.failed(
                host, url=url, error_class=exc.error_class, detail=str(exc), probe=probe
            )
        elif probe and exc.error_class != "ssrf_blocked":
            self.limiter.recovered(host)

    def _one_request(
        self,
        url: str,
        headers: dict[str, str],
        *,
        budget: float,
        expect: tuple[str, ...] | None,
        limit: int,
    ) -> tuple[int, dict[str, str], bytes]:
        if budget <= 0:
            raise TransientError(
                f"total timeout ({self.policy.total_timeout}s) exceeded",
                url=url,
                error_class="timeout",
            )
        deadline = time.monotonic() + budget
        try:
            with self._pool.get(
                url,
                headers,
                connect_timeout=self.policy.connect_timeout,
                read_timeout=self.policy.read_timeout,
                deadline=deadline,
            ) as response:
                status = response.status
                if status != 200:
                    response.discard()  # a 304 or a redirect: keep the connection
                    return status, response.headers, b""
                self._check_headers(url, status, response.headers, expect=expect, limit=limit)
                body = self._read_body(response, url, limit=limit)
                return status, response.headers, body
        except BlockedAddressError as exc:
            raise PermanentError(str(exc), url=url, error_class="ssrf_blocked") from exc
        except DeadlineExceededError as exc:
            raise self._total_timeout(url) from exc
        except TimeoutError as exc:
            raise TransientError(
                f"timeout: {type(exc).__name__}", url=url, error_class="timeout"
            ) from exc
        except (OSError, httpx.InvalidURL) as exc:
            raise TransientError(
                f"connection failed: {type(exc).__name__}: {exc}", url=url, error_class="network"
            ) from exc

    def _total_timeout(self, url: str) -> TransientError:
        return TransientError(
            f"total timeout ({self.policy.total_timeout}s) exceeded",
            url=url,
            error_class="timeout",
        )

    @staticmethod
    def _check_headers(
        url: str,
        status: int,
        headers: dict[str, str],
        *,
        expect: tuple[str, ...] | None,
        limit: int,
    ) -> None:
        content_type = headers.get("content-type", "").lower()
        if expect and content_type and not any(f in content_type for f in expect):
            raise PermanentError(
                f"unexpected content-type {content_type.split(';')[0]!r}",
                url=url,
                status=status,
                error_class="bad_content_type",
            )
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise PermanentError(
                f"body too large ({declared} bytes > {limit})",
                url=url,
                status=status,
                error_class="too_large",
            )

    def _read_body(self, response: Response, url: str, *, limit: int) -> bytes:
        decoder = BoundedDecoder(response.headers.get("content-encoding", ""), url=url)
        chunks: list[bytes] = []
        size = 0
        wire = 0

        def add(piece: bytes) -> None:
            nonlocal size
            size += len(piece)
            if size > limit:
                raise PermanentError(
                    f"body too large (> {limit} bytes decoded)",
                    url=url,
                    status=response.status,
                    error_class="too_large",
                )
            chunks.append(piece)

        # Each read returns what has arrived (up to 64 KiB) and is bounded by the
        # request's deadline, so a slow-drip server ends at the total timeout.
        while raw := response.read():
            wire += len(raw)
            if wire > limit:
                raise PermanentError(
                    f"body too large (> {limit} bytes on the wire)",
                    url=url,
                    status=response.status,
                    error_class="too_large",
                )
            for piece in decoder.feed(raw):
                add(piece)
        add(decoder.flush())
        return b"".join(chunks)

    @staticmethod
    def _raise_for_status(url: str, status: int, headers: dict[str, str]) -> None:
        if 200 <= status < 300:
            return
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status in TRANSIENT_STATUSES:
            raise TransientError(
                f"HTTP {status}",
                url=url,
                status=status,
                retry_after=retry_after,
                error_class="rate_limited" if status == 429 else "http_5xx",
            )
        error_class = "gone" if status == 410 else "http_4xx" if status < 500 else "http_5xx"
        raise PermanentError(f"HTTP {status}", url=url, status=status, error_class=error_class)


# Webhook deliveries: the one kind of request we send rather than fetch.

WEBHOOK_RESPONSE_MAX_BYTES = 64 * 1024
"""How much of a subscriber's answer is read: only its status matters, and the start of
its body explains a failure; a receiver that streams more is cut off."""


@dataclass(frozen=True)
class DeliveryResult:
    """One POST to a subscriber: its status (None: no answer) and, when it failed, why."""

    status: int | None
    error: str | None
    error_class: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookPoster:
    """Signed POSTs to subscribers, bounded and behind the SSRF guard.

    A subscriber's URL is somebody's input, like a feed's: it is checked before each
    request (DNS may have changed since the subscription was made) and again at connect
    time on the same lookup (:class:`~worker.ssrf.PinnedBackend`). Redirects are not
    followed (a 3xx is a failure: a redirect could point inside). Every step has a
    timeout and the whole request a deadline, so a delivery never outlives the
    subscription's lease (:mod:`worker.pipeline.webhooks`).
    """

    def __init__(
        self,
        *,
        timeout: float,
        user_agent: str,
        allowed_networks: tuple[str, ...] = (),
        resolver: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self.timeout = timeout
        self._allowed = allowed_networks
        self._resolver = resolver
        self._client = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent},
            trust_env=False,
            transport=PinnedTransport(PinnedBackend(allowed_networks, resolver=resolver)),
        )

    def close(self) -> None:
        self._client.close()

    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        """POST ``body``; a refusal, a timeout or a non-2xx answer is a failed result,
        never an exception (the caller records it on the subscription)."""
        deadline = time.monotonic() + 2 * self.timeout
        try:
            check_url_allowed(url, allowed_networks=self._allowed, resolver=self._resolver)
            with self._client.stream("POST", url, content=body, headers=headers) as response:
                head = bytearray()
                for piece in response.iter_raw():
                    head += piece[: WEBHOOK_RESPONSE_MAX_BYTES - len(head)]
                    if len(head) >= WEBHOOK_RESPONSE_MAX_BYTES or time.monotonic() > deadline:
                        break
        except (PermanentError, TransientError) as exc:
            return DeliveryResult(None, exc.message, exc.error_class)
        except BlockedAddressError as exc:
            return DeliveryResult(None, str(exc), "ssrf_blocked")
        except httpx.TimeoutException as exc:
            return DeliveryResult(None, f"timed out: {type(exc).__name__}", "timeout")
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            return DeliveryResult(None, f"{type(exc).__name__}: {exc}"[:500], "connection")
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(status, None)
        text = bytes(head[:300]).decode("utf-8", errors="replace").strip()
        return DeliveryResult(status, f"HTTP {status}" + (f": {text}" if text else ""), "http")
