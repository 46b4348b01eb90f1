"""The fetcher against a real HTTP server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from worker.decoding import decode_body
from worker.errors import PermanentError, TransientError
from worker.feeds import parse_feed
from worker.fetch import FEED_ACCEPT, HTML_CONTENT_TYPES, Fetcher, FetchPolicy
from worker.localweb import LocalWeb
from worker.politeness import HostRate, HostRates, LocalHostLimiter

pytestmark = pytest.mark.integration

Handler = BaseHTTPRequestHandler
LOOPBACK = ("127.0.0.1/32",)
FIFTY_MB = 50 * 1024 * 1024


def policy(**overrides: float | int) -> FetchPolicy:
    values: dict[str, object] = {
        "user_agent": "ukraine-security-ingest/test (+https://example.invalid/contact)",
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "total_timeout": 3.0,
        "max_bytes": 1024 * 1024,
        "max_redirects": 3,
        "allowed_networks": LOOPBACK,
    }
    values.update(overrides)
    return FetchPolicy(**values)  # type: ignore[arg-type]


def send(
    handler: Handler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    if "Content-Length" not in (headers or {}):
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    with contextlib.suppress(OSError):  # the client hung up on purpose (size cap, type)
        handler.wfile.write(body)


FEED = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>
<item><title>One</title><link>http://127.0.0.1/a</link></item></channel></rss>"""


@pytest.fixture(scope="module")
def _server() -> Iterator[LocalWeb]:
    server = LocalWeb().start()
    yield server
    server.stop()


@pytest.fixture
def web(_server: LocalWeb) -> LocalWeb:
    """One server for the module (stopping one takes 0.5 s); routes and log reset per test."""
    _server.routes.clear()
    _server.requests.clear()
    return _server


def route(web: LocalWeb, path: str, fn: Callable[[Handler], None]) -> str:
    web.routes["/" + path] = fn
    return web.url(path)


def test_conditional_get_sends_validators_and_handles_304(web: LocalWeb) -> None:
    """If-None-Match/If-Modified-Since go out; a 304 comes back as not_modified with no body."""
    seen: list[tuple[str | None, str | None]] = []

    def handler(h: Handler) -> None:
        seen.append((h.headers.get("If-None-Match"), h.headers.get("If-Modified-Since")))
        send(h, 304, headers={"ETag": '"v1"'})

    url = route(web, "feed.xml", handler)
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(url, etag='"v1"', last_modified="Tue, 01 Apr 2025 10:00:00 GMT")
    assert result.not_modified
    assert result.body == b""
    assert seen == [('"v1"', "Tue, 01 Apr 2025 10:00:00 GMT")]


def test_user_agent_names_the_project(web: LocalWeb) -> None:
    """Every request carries our user agent with a contact URL, and only gzip/deflate."""
    agents: list[tuple[str | None, str | None]] = []

    def handler(h: Handler) -> None:
        agents.append((h.headers.get("User-Agent"), h.headers.get("Accept-Encoding")))
        send(h, 200, FEED, {"Content-Type": "application/rss+xml"})

    with Fetcher(policy()) as fetcher:
        fetcher.get(route(web, "f", handler))
    assert agents == [
        ("ukraine-security-ingest/test (+https://example.invalid/contact)", "gzip, deflate")
    ]


def test_429_is_transient_with_retry_after_and_pauses_the_host(web: LocalWeb) -> None:
    """A 429 raises TransientError(retry_after) and pauses the whole host in the limiter."""
    url = route(web, "busy", lambda h: send(h, 429, b"slow down", {"Retry-After": "120"}))
    limiter = LocalHostLimiter(HostRates(HostRate(100.0, 10), {}), max_wait=5.0)
    with Fetcher(policy(), limiter=limiter) as fetcher:
        with pytest.raises(TransientError) as info:
            fetcher.get(url)
        assert info.value.error_class == "rate_limited"
        assert info.value.retry_after == 120
        # The next request to that host is refused by our own limiter, without
        # reaching the server: the pause (120 s) is longer than max_wait (5 s).
        requests_before = len(web.requests)
        with pytest.raises(TransientError) as again:
            fetcher.get(web.url("other-page"))
    assert again.value.error_class == "host_paused"
    assert "HTTP 429 (Retry-After 120s)" in str(again.value)  # why, for the entry's note
    assert again.value.retry_after is not None
    assert again.value.retry_after > 100
    assert len(web.requests) == requests_before


def test_503_with_retry_after_date_is_transient(web: LocalWeb) -> None:
    url = route(
        web,
        "down",
        lambda h: send(h, 503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}),
    )
    with Fetcher(policy()) as fetcher, pytest.raises(TransientError) as info:
        fetcher.get(url)
    assert info.value.status == 503
    assert info.value.retry_after == 24 * 3600  # capped


@pytest.mark.parametrize(
    ("status", "kind", "error_class"),
    [
        (500, TransientError, "http_5xx"),
        (502, TransientError, "http_5xx"),
        (404, PermanentError, "http_4xx"),
        (410, PermanentError, "gone"),
    ],
)
def test_error_statuses_are_typed(
    web: LocalWeb, status: int, kind: type[Exception], error_class: str
) -> None:
    url = route(web, "x", lambda h: send(h, status, b"error page", {"Content-Type": "text/html"}))
    with Fetcher(policy()) as fetcher, pytest.raises(kind) as info:
        fetcher.get(url)
    assert getattr(info.value, "error_class", None) == error_class


def test_server_that_never_answers_times_out(web: LocalWeb, release: threading.Event) -> None:
    """Connection accepted, no response ever: the read timeout ends it as transient."""
    url = route(web, "hang", lambda _h: release.wait(30))
    with Fetcher(policy(read_timeout=0.5)) as fetcher, pytest.raises(TransientError) as info:
        fetcher.get(url)
    assert info.value.error_class == "timeout"


def test_slow_drip_hits_the_total_timeout(web: LocalWeb, release: threading.Event) -> None:
    """A byte every 50 ms never trips the read timeout; the total timeout stops it."""

    def drip(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        while not release.wait(0.05):
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return

    url = route(web, "drip", drip)
    fetcher = Fetcher(policy(read_timeout=1.0, total_timeout=1.0))
    with fetcher, pytest.raises(TransientError) as info:
        fetcher.get(url)
    assert info.value.error_class == "timeout"
    assert "total timeout" in str(info.value)


def _stream_zeros(h: Handler, total: int, *, declare_length: bool, sent: list[int]) -> None:
    """Write ``total`` bytes lazily in 64 KiB pieces, counting what got out."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    if declare_length:
        h.send_header("Content-Length", str(total))
    else:
        h.send_header("Connection", "close")
        h.close_connection = True
    h.end_headers()
    piece = b"<p>" + b"a" * (64 * 1024 - 3)
    written = 0
    try:
        while written < total:
            h.wfile.write(piece)
            written += len(piece)
    except OSError:
        pass
    sent.append(written)


@pytest.mark.parametrize("declare_length", [True, False])
def test_fifty_megabyte_body_is_refused_early(web: LocalWeb, declare_length: bool) -> None:
    """50 MB against a 1 MB cap: refused from Content-Length, or while streaming without it."""
    sent: list[int] = []
    url = route(
        web, "huge", lambda h: _stream_zeros(h, FIFTY_MB, declare_length=declare_length, sent=sent)
    )
    with Fetcher(policy()) as fetcher, pytest.raises(PermanentError) as info:
        fetcher.get(url)
    assert info.value.error_class == "too_large"


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """~200 MB of zeros gzip-compressed to ~200 KB, built without holding 200 MB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(b"<html><body>")]
    parts += [compressor.compress(block) for _ in range(200)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_gzip_bomb_stops_at_the_cap_without_inflating(web: LocalWeb, gzip_bomb: bytes) -> None:
    """The cap applies to decompressed bytes, and memory stays near the cap, not 200 MB."""
    assert len(gzip_bomb) < 1024 * 1024
    url = route(
        web,
        "bomb",
        lambda h: send(
            h, 200, gzip_bomb, {"Content-Type": "text/html", "Content-Encoding": "gzip"}
        ),
    )
    with Fetcher(policy(max_bytes=4 * 1024 * 1024)) as fetcher:
        tracemalloc.start()
        try:
            with pytest.raises(PermanentError) as info:
                fetcher.get(url)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert info.value.error_class == "too_large"
    print(f"\ngzip bomb: {len(gzip_bomb)} bytes on the wire, fetch peak {peak / 1e6:.1f} MB")
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "gzip-members"])
def test_compressed_bodies_decode(web: LocalWeb, coding: str) -> None:
    """gzip, zlib-wrapped and raw deflate, and concatenated gzip members all decode."""
    if coding == "gzip":
        body, header = gzip.compress(FEED), "gzip"
    elif coding == "deflate":
        body, header = zlib.compress(FEED), "deflate"
    elif coding == "deflate-raw":
        raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body, header = raw.compress(FEED) + raw.flush(), "deflate"
    else:
        body, header = gzip.compress(FEED[:50]) + gzip.compress(FEED[50:]), "gzip"
    url = route(
        web,
        "c",
        lambda h: send(
            h, 200, body, {"Content-Type": "application/rss+xml", "Content-Encoding": header}
        ),
    )
    with Fetcher(policy()) as fetcher:
        assert fetcher.get(url).body == FEED


def test_unknown_content_encoding_is_refused(web: LocalWeb) -> None:
    url = route(
        web,
        "br",
        lambda h: send(h, 200, b"xx", {"Content-Type": "text/html", "Content-Encoding": "br"}),
    )
    with Fetcher(policy()) as fetcher, pytest.raises(PermanentError) as info:
        fetcher.get(url)
    assert info.value.error_class == "bad_encoding"


def test_wrong_charset_header_still_decodes(web: LocalWeb) -> None:
    """Header says UTF-8 but the bytes are windows-1251 (declared in meta): we read Cyrillic."""
    html = '<html><head><meta charset="windows-1251"></head><body>Київ і Харків</body></html>'
    url = route(
        web,
        "cp1251",
        lambda h: send(h, 200, html.encode("cp1251"), {"Content-Type": "text/html; charset=utf-8"}),
    )
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(url, expect=HTML_CONTENT_TYPES)
    text, encoding = decode_body(result.body, header_charset=result.charset)
    assert "Київ і Харків" in text
    assert encoding == "cp1251"


def test_bom_beats_a_wrong_header(web: LocalWeb) -> None:
    body = codecs.BOM_UTF8 + "<p>Дніпро</p>".encode()
    url = route(
        web, "bom", lambda h: send(h, 200, body, {"Content-Type": "text/html; charset=iso-8859-1"})
    )
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(url)
    assert decode_body(result.body, header_charset=result.charset) == ("<p>Дніпро</p>", "utf-8")


def test_feed_with_wrong_charset_header_is_bozo_but_readable(web: LocalWeb) -> None:
    """A UTF-8 feed served as us-ascii: flagged bozo, titles still decoded."""
    feed = FEED.replace(b"<title>One</title>", "<title>Запоріжжя</title>".encode())
    url = route(
        web, "feed", lambda h: send(h, 200, feed, {"Content-Type": "text/xml; charset=us-ascii"})
    )
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(url, accept=FEED_ACCEPT)
    parsed = parse_feed(result.body, base_url=url, response_headers=result.headers)
    assert parsed.bozo
    assert parsed.items[0].title == "Запоріжжя"


def test_redirect_loop_is_permanent(web: LocalWeb) -> None:
    route(web, "a", lambda h: send(h, 302, headers={"Location": "/b"}))
    route(web, "b", lambda h: send(h, 302, headers={"Location": "/a"}))
    with Fetcher(policy()) as fetcher, pytest.raises(PermanentError) as info:
        fetcher.get(web.url("a"))
    assert info.value.error_class == "redirect_loop"
    assert len(web.requests) == 4  # max_redirects=3: the first request plus three hops


def test_permanent_redirect_is_reported(web: LocalWeb) -> None:
    """301 then 308 is a permanent move; a 302 anywhere in the chain is not."""
    route(web, "old", lambda h: send(h, 301, headers={"Location": "/mid"}))
    route(web, "mid", lambda h: send(h, 308, headers={"Location": "/new"}))
    route(web, "new", lambda h: send(h, 200, FEED, {"Content-Type": "application/rss+xml"}))
    route(web, "temp", lambda h: send(h, 302, headers={"Location": "/old"}))
    with Fetcher(policy()) as fetcher:
        moved = fetcher.get(web.url("old"))
        temporary = fetcher.get(web.url("temp"))
    assert moved.permanent_redirect_to == web.url("new")
    assert moved.final_url == web.url("new")
    assert temporary.permanent_redirect_to is None
    assert temporary.final_url == web.url("new")


@pytest.mark.parametrize(
    ("location", "error_class"),
    [
        ("http://10.0.0.1/internal", "ssrf_blocked"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf_blocked"),
        ("file:///etc/passwd", "bad_url"),
    ],
)
def test_redirect_to_internal_address_is_refused(
    web: LocalWeb, location: str, error_class: str
) -> None:
    """The SSRF guard runs again on every hop, before any connection is made."""
    url = route(web, "r", lambda h: send(h, 302, headers={"Location": location}))
    with Fetcher(policy()) as fetcher, pytest.raises(PermanentError) as info:
        fetcher.get(url)
    assert info.value.error_class == error_class


def test_loopback_refused_unless_allowed(web: LocalWeb) -> None:
    url = route(web, "f", lambda h: send(h, 200, FEED, {"Content-Type": "application/rss+xml"}))
    with Fetcher(policy(allowed_networks=())) as fetcher, pytest.raises(PermanentError) as info:  # type: ignore[arg-type]
        fetcher.get(url)
    assert info.value.error_class == "ssrf_blocked"
    assert web.requests == []


def _port(web: LocalWeb) -> int:
    return int(web.base_url.rsplit(":", 1)[1].split("/")[0])


def test_dns_rebinding_cannot_reach_an_internal_address(web: LocalWeb) -> None:
    """The name's first answer passes the check; the connection re-resolves and is refused."""
    route(web, "f", lambda h: send(h, 200, FEED, {"Content-Type": "application/rss+xml"}))
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    lookups: list[str] = []

    def rebinding_dns(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    fetcher = Fetcher(policy(allowed_networks=()), resolver=rebinding_dns)  # type: ignore[arg-type]
    with fetcher, pytest.raises(PermanentError) as info:
        fetcher.get(f"http://rebind.test:{_port(web)}/f")
    assert info.value.error_class == "ssrf_blocked"
    assert "127.0.0.1" in str(info.value)
    assert lookups == ["rebind.test", "rebind.test"]  # checked, then re-checked at connect
    assert web.requests == []  # no socket reached the server


def test_connection_goes_to_the_checked_address(web: LocalWeb) -> None:
    """A name only our resolver knows is fetched: the socket uses the checked address."""
    url = route(web, "f", lambda h: send(h, 200, FEED, {"Content-Type": "application/rss+xml"}))
    with Fetcher(policy(), resolver=lambda _host, _port: ["127.0.0.1"]) as fetcher:
        result = fetcher.get(url.replace("127.0.0.1", "only-our-dns.test"))
    assert result.status == 200
    assert result.body == FEED


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n...."),
        ("application/pdf", b"%PDF-1.7 ..."),
        ("application/octet-stream", b"%PDF-1.7 labelled as bytes"),
    ],
)
def test_binary_is_not_a_page(web: LocalWeb, content_type: str, body: bytes) -> None:
    """Binary content is refused by Content-Type, or by its magic bytes when mislabelled."""
    url = route(web, "bin", lambda h: send(h, 200, body, {"Content-Type": content_type}))
    with Fetcher(policy()) as fetcher, pytest.raises(PermanentError) as info:
        fetcher.get(url, expect=("text/html", "octet-stream"))
    assert info.value.error_class == "bad_content_type"


def test_html_instead_of_feed_is_not_a_feed(web: LocalWeb) -> None:
    """An HTML page at a feed URL is fetched (HTML is allowed) and then refused by the parser."""
    page = b"<!doctype html><html><head><title>Home</title></head><body>News</body></html>"
    url = route(web, "feed", lambda h: send(h, 200, page, {"Content-Type": "text/html"}))
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(url, accept=FEED_ACCEPT)
    with pytest.raises(PermanentError) as info:
        parse_feed(result.body, base_url=url, response_headers=result.headers)
    assert info.value.error_class == "not_a_feed"
