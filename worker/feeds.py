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
# The declaration is looked for in every encoding an XML parser would detect
# from the first bytes (UTF-16/32 either way round, EBCDIC), so re-encoding a
# bomb does not smuggle it past the check.
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_ENTITY_DECL_WIDE = tuple(
    "<!ENTITY".encode(codec)
    for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp037", "cp500")
)
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
    encoding: str | None = None  # as feedparser decoded it (HTTP header, BOM, XML decl)


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
    head = body[: _DOCTYPE_SCAN_BYTES * 4]
    if _ENTITY_DECL.search(head[:_DOCTYPE_SCAN_BYTES]) or any(
        pattern in head for pattern in _ENTITY_DECL_WIDE
    ):
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
        encoding=_clean(parsed.get("encoding")),
    )


def stale_validators(
    *,
    stored_hash: str | None,
    new_hash: str,
    stored_etag: str | None,
    new_etag: str | None,
    stored_last_modified: str | None,
    new_last_modified: str | None,
) -> str | None:
    """Why a feed's HTTP validators cannot be trusted, or None if they can.

    A server that keeps the same ETag (or, without ETags, the same
    Last-Modified) while the body changes would answer our conditional GETs
    with 304 and hide new items; the caller then turns conditional GET off
    for the feed. The body hash is the ground truth.
    """
    if stored_hash is None or new_hash == stored_hash:
        return None
    if stored_etag and new_etag and new_etag.strip() == stored_etag.strip():
        return "etag_unchanged_body_changed"
    if (
        not stored_etag
        and not new_etag
        and stored_last_modified
        and new_last_modified
        and new_last_modified.strip() == stored_last_modified.strip()
    ):
        return "last_modified_unchanged_body_changed"
    return None


def body_hash(body: bytes) -> str:
    """The change detector stored as ``feeds.last_body_hash``."""
    return hashlib.sha256(body).hexdigest()
