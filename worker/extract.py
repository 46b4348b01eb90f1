"""Article extraction: HTML in, body text and metadata out (no I/O).

trafilatura does the heavy lifting (docs/benchmark.md measures what it costs
and what cheaper modes would lose). This module pins down what we
ask of it, fills the gaps it leaves (language, canonical URL) and decides when
the result is too thin to trust, in which case the pipeline falls back to the
feed's own summary and records that it did.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import lxml.html
import trafilatura

# Above this, a page is almost certainly not a news article (or is hostile);
# trafilatura's cost grows with tree size, so cap the work per page.
MAX_HTML_CHARS = 3_000_000

_TAG_RE = re.compile(r"<[^>]+>")
_WS_RE = re.compile(r"[ \t\r\f\v]+")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}")


@dataclass(frozen=True)
class ExtractedArticle:
    """What one page gave us; ``method`` says how (``trafilatura`` or ``feed_summary``)."""

    title: str | None
    body: str
    author: str | None
    published_at: datetime | None
    language: str | None
    canonical_url: str | None
    description: str | None
    method: str


def html_to_text(fragment: str) -> str:
    """Strip tags and entities from a feed summary (which is often HTML)."""
    text = _TAG_RE.sub(" ", fragment)
    text = html_lib.unescape(text)
    lines = [_WS_RE.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _page_hints(html: str) -> tuple[str | None, str | None]:
    """The page's declared language and its rel=canonical / og:url."""
    try:
        tree = lxml.html.document_fromstring(html[:MAX_HTML_CHARS])
    except (ValueError, lxml.etree.ParserError):
        return None, None
    lang = tree.get("lang") or tree.get("xml:lang")
    lang_code = None
    if lang:
        match = _LANG_RE.match(lang.strip())
        lang_code = match.group(0).lower() if match else None
    canonical = None
    for href in tree.xpath('//link[@rel="canonical"]/@href'):
        canonical = str(href).strip() or None
        break
    if canonical is None:
        for content in tree.xpath('//meta[@property="og:url"]/@content'):
            canonical = str(content).strip() or None
            break
    return lang_code, canonical


def detect_language(text: str) -> str | None:
    """Language of ``text`` by py3langid (ships its own model; no download)."""
    sample = text[:3000].strip()
    if len(sample) < 20:
        return None
    import py3langid

    code, _score = py3langid.classify(sample)
    return str(code)


def extract_article(html: str | bytes, *, url: str) -> ExtractedArticle | None:
    """Extract the main text and metadata of a news page.

    Returns ``None`` when no article text could be found (a paywall stub, an
    index page, broken markup); the caller decides what to fall back to.
    """
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    html = html[:MAX_HTML_CHARS]
    if not html.strip():
        return None
    try:
        document = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=False,
            include_images=False,
            favor_precision=False,
            deduplicate=False,
        )
    except (ValueError, TypeError, RecursionError, AttributeError):
        # trafilatura raises a zoo of exceptions on pathological markup; a page
        # we cannot parse is treated exactly like one with no article in it.
        document = None
    if document is not None and not isinstance(document, dict):
        document = document.as_dict()
    if not document:
        return None
    body = (document.get("text") or "").strip()
    title = document.get("title") or None
    if title and body.startswith(title):
        # The <h1> headline often leads the extracted text; the title has its
        # own column, and keeping it twice would skew dedup and classification.
        body = body[len(title) :].lstrip()
    if not body:
        return None
    declared_lang, canonical = _page_hints(html)
    language = detect_language(body) or declared_lang
    return ExtractedArticle(
        title=title,
        body=body,
        author=(document.get("author") or None),
        published_at=_parse_date(document.get("date")),
        language=language,
        canonical_url=canonical,
        description=(document.get("description") or None),
        method="trafilatura",
    )


def from_feed_summary(
    *, title: str | None, summary: str | None, published_at: datetime | None
) -> ExtractedArticle | None:
    """The fallback article built from what the feed itself said.

    A title alone is not an article: without summary text we return ``None``
    and the entry is recorded as failed (it keeps its title and URL there).
    """
    text = html_to_text(summary or "")
    if not text:
        return None
    return ExtractedArticle(
        title=title,
        body=text,
        author=None,
        published_at=published_at,
        language=detect_language(f"{title or ''}. {text}"),
        canonical_url=None,
        description=None,
        method="feed_summary",
    )
