"""HTTP fetching: the only module that talks to other people's servers.

Every request is bounded: connect/read/total timeouts, a body-size cap enforced
while streaming (after decompression, so a gzip bomb stops at the cap), a
redirect limit with the SSRF guard re-checked on every hop, and content-type
checks so a feed URL that returns a PDF fails clearly. Errors come out typed
(:mod:`worker.errors`): transient ones are retried by the task, permanent ones
recorded against the feed or URL.
"""

from __future__ import annotations

import codecs
import email.utils
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx

from .errors import PermanentError, TransientError

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

FEED_CONTENT_TYPES = ("xml", "rss", "atom", "rdf", "text/plain", "octet-stream")
HTML_CONTENT_TYPES = ("text/html", "application/xhtml", "text/plain")
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_REDIRECTS = {301, 308}
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
MAX_RETRY_AFTER_SECONDS = 24 * 3600

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)


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


def charset_from_content_type(value: str) -> str | None:
    for part in value.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            return val.strip().strip("\"'").lower()
    return None


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_body(body: bytes, *, header_charset: str | None) -> tuple[str, str]:
    """Decode an HTML body, returning ``(text, encoding_used)``.

    Order matters and follows the HTML standard's spirit: a byte-order mark is
    unambiguous, then the HTTP header, then the document's own declaration,
    then a statistical guess; UTF-8 with replacement as the last resort so we
    never lose a page to one bad byte.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace"), name
    candidates: list[str | None] = [_known_codec(header_charset)]
    head = body[:4096]
    meta = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    if meta:
        candidates.append(_known_codec(meta.group(1).decode("ascii", "ignore")))
    for candidate in candidates:
        # UTF-16/32 declared without a BOM is a known publisher mistake (the
        # HTML standard maps such declarations to UTF-8); don't trust it.
        if candidate and not candidate.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
            try:
                return body.decode(candidate), candidate
            except UnicodeDecodeError:
                continue
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is not None and best.encoding:
        return body.decode(best.encoding, "replace"), best.encoding
    return body.decode("utf-8", "replace"), "utf-8"


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


def _networks(cidrs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def check_url_allowed(
    url: str,
    *,
    allowed_networks: Iterable[str] = (),
    resolver: Callable[[str, int], list[str]] | None = None,
) -> None:
    """Refuse non-http(s) URLs and hosts that resolve to internal addresses (SSRF).

    Loopback, private, link-local (including cloud metadata at 169.254.169.254),
    multicast and reserved ranges are refused unless the operator allowed the
    network explicitly in settings. Every resolved address must pass, so a DNS
    name with one public and one private record is refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PermanentError(
            f"scheme {parts.scheme or '(none)'!r} refused", url=url, error_class="bad_url"
        )
    host = parts.hostname
    if not host:
        raise PermanentError("URL has no host", url=url, error_class="bad_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PermanentError(f"bad port: {exc}", url=url, error_class="bad_url") from exc
    resolve = resolver or _resolve
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise TransientError(f"DNS lookup failed: {exc}", url=url, error_class="dns") from exc
    allowed = _networks(allowed_networks)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped  # type: ignore[union-attr]
        if any(ip in net for net in allowed):
            continue
        if not ip.is_global or ip.is_multicast:
            raise PermanentError(
                f"refusing to fetch internal address {ip}", url=url, error_class="ssrf_blocked"
            )


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


class Fetcher:
    """Bounded HTTP GETs with redirects handled (and re-checked) by hand."""

    def __init__(self, policy: FetchPolicy, *, client: httpx.Client | None = None) -> None:
        self.policy = policy
        self._client = client or httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=policy.connect_timeout,
                read=policy.read_timeout,
                write=policy.read_timeout,
                pool=policy.connect_timeout,
            ),
            headers={"User-Agent": policy.user_agent},
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

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
    ) -> FetchResult:
        """GET ``url`` within the policy's limits.

        ``expect`` lists content-type fragments that are acceptable; anything
        else (an image, a PDF) is a :class:`PermanentError` before the body is read.
        """
        started = time.monotonic()
        deadline = started + self.policy.total_timeout
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
            check_url_allowed(current, allowed_networks=self.policy.allowed_networks)
            status, resp_headers, body = self._one_request(current, headers, deadline, expect)
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

    def _one_request(
        self,
        url: str,
        headers: dict[str, str],
        deadline: float,
        expect: tuple[str, ...] | None,
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                resp_headers = {k.lower(): v for k, v in response.headers.items()}
                if status != 200:
                    return status, resp_headers, b""
                content_type = resp_headers.get("content-type", "").lower()
                if expect and content_type and not any(f in content_type for f in expect):
                    raise PermanentError(
                        f"unexpected content-type {content_type.split(';')[0]!r}",
                        url=url,
                        status=status,
                        error_class="bad_content_type",
                    )
                declared = resp_headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.policy.max_bytes:
                    raise PermanentError(
                        f"body too large ({declared} bytes > {self.policy.max_bytes})",
                        url=url,
                        status=status,
                        error_class="too_large",
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.policy.max_bytes:
                        raise PermanentError(
                            f"body too large (> {self.policy.max_bytes} bytes)",
                            url=url,
                            status=status,
                            error_class="too_large",
                        )
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"total timeout ({self.policy.total_timeout}s) exceeded",
                            url=url,
                            error_class="timeout",
                        )
                    chunks.append(chunk)
                return status, resp_headers, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"timeout: {type(exc).__name__}", url=url, error_class="timeout"
            ) from exc
        except httpx.DecodingError as exc:
            raise PermanentError(
                f"bad content encoding: {exc}", url=url, error_class="bad_encoding"
            ) from exc
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise TransientError(
                f"connection failed: {type(exc).__name__}: {exc}", url=url, error_class="network"
            ) from exc

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
