"""Feed parsing: bytes in, plain items out (no I/O).

feedparser is forgiving by design: it returns *something* for almost any
input and flags problems with ``bozo``. We keep that forgiveness (a feed with a
stray bad character still has good items) but surface the flag so operators
can see which feeds are malformed, and we refuse documents that declare XML
entities, the vector for entity-expansion ("billion laughs") and external-entity
attacks, before feedparser ever sees them.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser

from .errors import PermanentError

# A DOCTYPE that declares entities (internal or external). Legitimate feeds
# never need one; the few that carry a bare DOCTYPE (old RSS 0.91) are fine.
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DOCTYPE_SCAN_BYTES = 64 * 1024


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed, normalised to what the pipeline needs."""

    entry_key: str
    url: str
    guid: str | None
    title: str | None
    summary: str | None
    author: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    site_url: str | None
    language: str | None
    ttl_seconds: int | None
    bozo: bool
    bozo_message: str | None
    items: list[FeedItem] = field(default_factory=list)
    skipped_items: int = 0


def entry_key(*, guid: str | None, url: str | None, title: str | None) -> str:
    """A stable identity for a feed item within its feed.

    The GUID wins when present because publishers change URLs (tracking
    parameters, slugs) but keep GUIDs; without one we fall back to the link,
    then the title. The key is a hash so it has a fixed, indexable length.
    """
    basis = f"guid:{guid}" if guid else f"url:{url}" if url else f"title:{title or ''}"
    return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _ttl_seconds(feed: Any) -> int | None:
    ttl = _clean(feed.get("ttl"))
    if ttl and ttl.isdigit():
        return int(ttl) * 60
    return None


def reject_entity_declarations(body: bytes) -> None:
    """Raise if the document declares XML entities (billion laughs, XXE)."""
    if _ENTITY_DECL.search(body[:_DOCTYPE_SCAN_BYTES]):
        raise PermanentError(
            "feed declares XML entities; refused (entity-expansion protection)",
            error_class="unsafe_xml",
        )


def parse_feed(
    body: bytes, *, base_url: str, response_headers: dict[str, str] | None = None
) -> ParsedFeed:
    """Parse an RSS/Atom document into :class:`ParsedFeed`.

    Raises :class:`PermanentError` when the bytes are not a feed at all (e.g. an
    HTML page or an empty body), so the poll is recorded as failed rather than
    as a successful poll of zero items.
    """
    reject_entity_declarations(body)
    headers = {k.lower(): v for k, v in (response_headers or {}).items()}
    headers.setdefault("content-location", base_url)
    # Without a Content-Type feedparser flags every document as bozo; a missing
    # header says nothing about the feed's well-formedness, so assume XML.
    headers.setdefault("content-type", "application/xml")
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    version = parsed.get("version") or ""
    bozo = bool(parsed.get("bozo"))
    bozo_exc = parsed.get("bozo_exception")
    bozo_message = f"{type(bozo_exc).__name__}: {bozo_exc}" if bozo and bozo_exc else None
    if not version and not parsed.entries:
        raise PermanentError(
            f"not a feed ({bozo_message or 'no RSS/Atom root element'})",
            url=base_url,
            error_class="not_a_feed",
        )
    feed = parsed.feed
    items: list[FeedItem] = []
    skipped = 0
    seen: set[str] = set()
    for entry in parsed.entries:
        url = _clean(entry.get("link"))
        guid = _clean(entry.get("id"))
        title = _clean(entry.get("title"))
        if not url or not url.lower().startswith(("http://", "https://")):
            skipped += 1
            continue
        key = entry_key(guid=guid, url=url, title=title)
        if key in seen:
            continue
        seen.add(key)
        items.append(
            FeedItem(
                entry_key=key,
                url=url,
                guid=guid,
                title=title,
                summary=_clean(entry.get("summary")),
                author=_clean(entry.get("author")),
                published_at=_struct_to_datetime(
                    entry.get("published_parsed") or entry.get("updated_parsed")
                ),
            )
        )
    return ParsedFeed(
        title=_clean(feed.get("title")),
        site_url=_clean(feed.get("link")),
        language=_clean(feed.get("language")),
        ttl_seconds=_ttl_seconds(feed),
        bozo=bozo,
        bozo_message=bozo_message,
        items=items,
        skipped_items=skipped,
    )
