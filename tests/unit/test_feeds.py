"""Feed parsing: items, identity keys, bozo flags, and refusal of entity tricks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import PermanentError
from worker.feeds import body_hash, entry_key, parse_feed, stale_validators

SEEDS = Path(__file__).resolve().parents[2] / "seeds"

RSS = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>
<link>https://example.org/</link><ttl>30</ttl>
<item><title>One</title><link>https://example.org/a</link><guid>g1</guid>
<pubDate>Tue, 25 Feb 2025 09:30:00 GMT</pubDate>
<description>&lt;p&gt;Hi&lt;/p&gt;</description></item>
<item><title>Two</title><link>https://example.org/b</link></item>
<item><title>No link</title></item>
<item><title>Dup</title><link>https://example.org/a</link><guid>g1</guid></item>
</channel></rss>"""


def test_rss_items_are_normalised() -> None:
    parsed = parse_feed(RSS, base_url="https://example.org/feed")
    assert [i.title for i in parsed.items] == ["One", "Two"]
    first = parsed.items[0]
    assert first.guid is not None
    assert first.guid.endswith("g1")
    assert first.published_at == datetime(2025, 2, 25, 9, 30, tzinfo=UTC)
    assert parsed.ttl_seconds == 30 * 60
    assert parsed.skipped_items == 1
    assert not parsed.bozo


def test_entry_key_prefers_guid_over_url() -> None:
    a = entry_key(guid="g", url="https://x/1", title="t")
    b = entry_key(guid="g", url="https://x/2?utm_source=rss", title="t2")
    assert a == b
    assert entry_key(guid=None, url="https://x/1", title="t") != a


def test_seed_feed_parses() -> None:
    body = (SEEDS / "seed-feed.xml").read_bytes().replace(b"{{BASE_URL}}", b"http://127.0.0.1:1")
    parsed = parse_feed(body, base_url="http://127.0.0.1:1/seed-feed.xml")
    assert len(parsed.items) == 1
    assert parsed.items[0].title is not None
    assert parsed.items[0].title.startswith("Media: French president")


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(PermanentError) as info:
        parse_feed(b"<html><body><p>Hello</p></body></html>", base_url="https://x/")
    assert info.value.error_class == "not_a_feed"


def test_billion_laughs_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title></channel></rss>"""
    with pytest.raises(PermanentError) as info:
        parse_feed(bomb, base_url="https://x/")
    assert info.value.error_class == "unsafe_xml"


def test_external_entity_is_refused() -> None:
    xxe = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&x;</title></channel></rss>"""
    with pytest.raises(PermanentError):
        parse_feed(xxe, base_url="https://x/")


def test_malformed_feed_is_bozo_but_keeps_items() -> None:
    broken = RSS.replace(b"</channel></rss>", b"<item><title>bad & worse</title></item>")
    parsed = parse_feed(broken, base_url="https://example.org/feed")
    assert parsed.bozo
    assert parsed.bozo_message
    assert len(parsed.items) >= 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        parsed = parse_feed(data, base_url="https://example.org/feed")
    except PermanentError:
        return
    for item in parsed.items:
        assert item.url.startswith(("http://", "https://"))


@pytest.mark.parametrize("codec", ["utf-16-be", "utf-16-le", "utf-32-le", "cp037"])
def test_entity_bomb_in_another_encoding_is_refused(codec: str) -> None:
    """Re-encoding a billion-laughs document (UTF-16/32, EBCDIC) does not smuggle it past us."""
    doc = f"""<?xml version="1.0" encoding="{codec}"?>
<!DOCTYPE feed [<!ENTITY a "bogus "><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&b;</title></feed>"""
    with pytest.raises(PermanentError) as info:
        parse_feed(doc.encode(codec), base_url="https://x/")
    assert info.value.error_class == "unsafe_xml"


def test_encoding_is_reported() -> None:
    body = RSS.replace(b'encoding="utf-8"', b'encoding="windows-1251"').replace(
        b"<title>T</title>", "<title>Київ</title>".encode("cp1251")
    )
    parsed = parse_feed(body, base_url="https://example.org/feed")
    assert parsed.title == "Київ"
    assert parsed.encoding == "windows-1251"


def test_stale_validators() -> None:
    base = {"stored_hash": "h1", "stored_etag": '"e"', "stored_last_modified": None}
    assert stale_validators(**base, new_hash="h1", new_etag='"e"', new_last_modified=None) is None
    assert (
        stale_validators(**base, new_hash="h2", new_etag='"e"', new_last_modified=None)
        == "etag_unchanged_body_changed"
    )
    assert stale_validators(**base, new_hash="h2", new_etag='"f"', new_last_modified=None) is None
    lm = "Tue, 01 Apr 2025 10:00:00 GMT"
    assert (
        stale_validators(
            stored_hash="h1", new_hash="h2", stored_etag=None, new_etag=None,
            stored_last_modified=lm, new_last_modified=lm,
        )
        == "last_modified_unchanged_body_changed"
    )  # fmt: skip
    assert (
        stale_validators(
            stored_hash=None, new_hash="h2", stored_etag='"e"', new_etag='"e"',
            stored_last_modified=None, new_last_modified=None,
        )
        is None
    )  # fmt: skip
    assert body_hash(b"x") == body_hash(b"x") != body_hash(b"y")
