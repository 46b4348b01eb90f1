"""Pure parts of fetching: charset order, Retry-After, and the SSRF guard."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime

import pytest

from worker.errors import PermanentError
from worker.fetch import check_url_allowed, decode_body, parse_retry_after


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
