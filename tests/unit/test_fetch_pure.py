"""Pure parts of fetching: charset order, Retry-After, and the SSRF guard."""

from __future__ import annotations

import codecs
import gzip
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.decoding import DECODE_STEP_BYTES, BoundedDecoder, decode_body, looks_binary
from worker.errors import PermanentError, TransientError
from worker.fetch import host_key, parse_retry_after
from worker.politeness import HostRate, HostRates, LocalHostLimiter
from worker.ssrf import check_url_allowed


def test_bom_beats_header() -> None:
    body = codecs.BOM_UTF8 + "Київ".encode()
    text, enc = decode_body(body, header_charset="iso-8859-1")
    assert text == "Київ"
    assert enc == "utf-8"


def test_header_charset_used_when_valid() -> None:
    body = "Zürich".encode("iso-8859-1")
    text, _ = decode_body(body, header_charset="iso-8859-1")
    assert text == "Zürich"


def test_meta_charset_when_header_missing() -> None:
    body = '<html><head><meta charset="windows-1251"></head><body>Киев</body></html>'.encode(
        "cp1251"
    )
    text, enc = decode_body(body, header_charset=None)
    assert "Киев" in text
    assert enc == "cp1251"


def test_wrong_header_falls_back() -> None:
    body = "Київ і Львів".encode()
    text, _ = decode_body(body, header_charset="utf-16")
    assert "Київ" in text


def test_detector_for_undeclared_legacy_encoding() -> None:
    body = ("Новини про Україну та безпеку в Європі. " * 20).encode("cp1251")
    text, _ = decode_body(body, header_charset=None)
    assert "Україну" in text


def test_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 01 Jan 2025 12:01:00 GMT", now=now) == 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after("999999999") == 24 * 3600


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00::1", "0.0.0.0"],
)
def test_internal_addresses_refused(address: str) -> None:
    with pytest.raises(PermanentError) as info:
        check_url_allowed("http://evil.example/", resolver=lambda _h, _p: [address])
    assert info.value.error_class == "ssrf_blocked"


def test_allowlisted_network_passes() -> None:
    check_url_allowed(
        "http://localhost:8080/feed",
        allowed_networks=["127.0.0.1/32"],
        resolver=lambda _h, _p: ["127.0.0.1"],
    )


def test_public_address_passes() -> None:
    check_url_allowed("https://news.example/", resolver=lambda _h, _p: ["93.184.216.34"])


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/", "gopher://x", "http:///nohost"])
def test_bad_schemes_and_hosts_refused(url: str) -> None:
    with pytest.raises(PermanentError):
        check_url_allowed(url, resolver=lambda _h, _p: ["93.184.216.34"])


def _inflate_all(decoder: BoundedDecoder, data: bytes, step: int = 1000) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(data), step):
        out.extend(decoder.feed(data[i : i + step]))
    out.append(decoder.flush())
    return out


def test_bounded_decoder_inflates_in_small_steps() -> None:
    """10 MB of zeros (~10 KB gzip) comes out in pieces of at most DECODE_STEP_BYTES."""
    bomb = gzip.compress(b"\0" * 10_000_000)
    pieces = _inflate_all(BoundedDecoder("gzip", url="u"), bomb, step=len(bomb))
    assert sum(map(len, pieces)) == 10_000_000
    assert max(map(len, pieces)) <= DECODE_STEP_BYTES


@pytest.mark.parametrize("header", ["", "identity", "gzip", "x-gzip", "deflate", "GZIP "])
def test_bounded_decoder_codings(header: str) -> None:
    data = "Новини. ".encode() * 500
    coding = header.strip().lower()
    if coding in ("gzip", "x-gzip"):
        wire = gzip.compress(data)
    elif coding == "deflate":
        wire = zlib.compress(data)
    else:
        wire = data
    assert b"".join(_inflate_all(BoundedDecoder(header, url="u"), wire)) == data


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, gzip", "compress"])
def test_bounded_decoder_refuses_what_it_cannot_bound(header: str) -> None:
    with pytest.raises(PermanentError) as info:
        BoundedDecoder(header, url="u")
    assert info.value.error_class == "bad_encoding"


def test_corrupt_gzip_is_permanent() -> None:
    with pytest.raises(PermanentError) as info:
        _inflate_all(BoundedDecoder("gzip", url="u"), b"\x1f\x8b\x08\x00garbage-garbage")
    assert info.value.error_class == "bad_encoding"


def test_looks_binary_and_host_key() -> None:
    assert looks_binary(b"%PDF-1.4")
    assert looks_binary(b"\r\n\x89PNG\r\n")
    assert not looks_binary(b"<?xml version='1.0'?><rss/>")
    assert host_key("https://WWW.Example.COM:8443/a?b") == "www.example.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@given(st.floats(min_value=0.1, max_value=50), st.integers(1, 5), st.integers(1, 40))
def test_local_limiter_never_exceeds_burst_plus_rate(rate: float, burst: int, n: int) -> None:
    """In-process fallback: n acquisitions take at least (n - burst) / rate seconds."""
    clock = FakeClock()
    limiter = LocalHostLimiter(
        HostRates(HostRate(rate, burst), {}), max_wait=10**9, clock=clock, sleep=clock.sleep
    )
    start = clock.now
    for _ in range(n):
        limiter.acquire("h")
    assert clock.now - start >= max(n - burst, 0) / rate - 1e-6


def test_local_limiter_pause_and_max_wait() -> None:
    clock = FakeClock()
    limiter = LocalHostLimiter(
        HostRates(HostRate(1, 1), {}), max_wait=30, clock=clock, sleep=clock.sleep
    )
    limiter.pause("h", 20)
    limiter.acquire("h")
    assert clock.slept == [20]
    limiter.pause("h", 100, reason="HTTP 429")
    with pytest.raises(TransientError) as info:
        limiter.acquire("h")
    assert info.value.error_class == "host_paused"  # not the bucket: the pause, and why
    assert "HTTP 429" in str(info.value)
    assert limiter.reserve("other") == (True, 0.0)
