"""The benchmark's local "news web": real article pages behind many RSS feeds.

Pages come from ../shared/data (fundus and article-extraction-benchmark), are
decompressed once and kept in memory, and are served by a ThreadingHTTPServer
on 127.0.0.1 so the worker's fetches cost what a fast real server costs.

The plan (:func:`make_plan`) decides which URL each feed item links to:

- every article has its own URL ``/a/<n>/<page>.html``, so N fetches really are
  N fetches; article ``n`` shows page ``n % len(pages)``, so once every page
  has been used the next ones are *syndicated copies* (same story, another
  URL), each with one extra partner paragraph so they are near-duplicates;
- a fraction of feed items are *repeats*: an article already linked from
  another feed (same URL), which the worker must fetch and then recognise.

Feeds carry an ETag and answer ``If-None-Match`` with 304, for the poll-only
measurement.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PARTNER_NOTE = b"</p><p>Partner copy %d: republished in full with permission of the publisher.</p>"


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    summary: str
    html: bytes


def load_pages(shared_data: Path) -> list[Page]:
    """All fundus and article-extraction-benchmark pages, decompressed once."""
    pages: list[Page] = []
    fundus = shared_data / "fundus"
    truth = json.loads((fundus / "fundus_ground_truth.json").read_text())
    for key in sorted(truth):
        record = truth[key]
        html = gzip.decompress((fundus / record["html"]).read_bytes())
        pages.append(Page(key, record["title"], record["articleBody"][:300], html))
    aeb = shared_data / "article-extraction-benchmark"
    truth = json.loads((aeb / "ground-truth.json").read_text())
    for key in sorted(truth):
        body = truth[key]["articleBody"]
        html = gzip.decompress((aeb / "html" / f"{key}.html.gz").read_bytes())
        title = " ".join(body.split()[:12]) or key
        pages.append(Page(f"aeb/{key[:12]}", title, body[:300], html))
    return pages


def page_bytes(pages: list[Page], article: int) -> bytes:
    """The HTML of article ``n``: its page, plus a partner note when it is a copy."""
    page = pages[article % len(pages)]
    copy = article // len(pages)
    if copy == 0:
        return page.html
    return page.html.replace(b"</p>", PARTNER_NOTE % article, 1)


def article_path(pages: list[Page], article: int) -> str:
    return f"/a/{article}/{article % len(pages)}.html"


@dataclass
class Plan:
    """Which articles each feed links to; ``fetches`` counts items over all feeds."""

    feeds: list[list[int]]
    articles: int
    repeats: int

    @property
    def fetches(self) -> int:
        return sum(len(items) for items in self.feeds)


def make_plan(*, feeds: int, fetches: int, repeat_fraction: float, first_article: int = 0) -> Plan:
    """Spread ``fetches`` feed items over ``feeds`` feeds, ``repeat_fraction`` of them repeats."""
    repeats = int(fetches * repeat_fraction) if feeds > 1 else 0
    articles = fetches - repeats
    plan: list[list[int]] = [[] for _ in range(feeds)]
    for n in range(articles):
        plan[n % feeds].append(first_article + n)
    for r in range(repeats):
        # Feed f repeats an article first linked by the next feed.
        source = plan[(r + 1) % feeds]
        plan[r % feeds].append(source[(r // feeds) % len(source)])
    return Plan(feeds=plan, articles=articles, repeats=repeats)


@dataclass
class NewsWeb:
    """Serve the plan's feeds and article pages until :meth:`stop`."""

    pages: list[Page]
    counts: Counter[str] = field(default_factory=Counter)
    feeds: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    article_limit: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY, as real web servers set it: http.server writes the
            # headers and the body separately, and with Nagle's algorithm the
            # body then waits for the client's delayed ACK, ~40 ms per response.
            disable_nagle_algorithm = True

            def log_message(self, *_args: Any) -> None:
                return

            def do_GET(self) -> None:
                web._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A worker closing an idle keep-alive connection is not an error
                # worth a traceback in the benchmark's output.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NewsWeb:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def publish(self, name: str, articles: list[int], *, now: datetime) -> str:
        """Serve one RSS feed linking to ``articles``; returns its URL."""
        items = []
        for i, article in enumerate(articles):
            page = self.pages[article % len(self.pages)]
            link = self.base_url + article_path(self.pages, article)
            pub = format_datetime(now - timedelta(minutes=i), usegmt=True)
            items.append(
                f"<item><title>{escape(page.title)}</title><link>{link}</link>"
                f'<guid isPermaLink="true">{link}</guid><pubDate>{pub}</pubDate>'
                f"<description>{escape(page.summary)}</description></item>"
            )
            self.article_limit = max(self.article_limit, article + 1)
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(name)}</title><link>{self.base_url}/</link>"
            + "".join(items)
            + "</channel></rss>"
        ).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        path = f"/feed/{name}.xml"
        self.feeds[path] = (body, etag)
        return self.base_url + path

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.startswith("/feed/") and path in self.feeds:
            body, etag = self.feeds[path]
            if handler.headers.get("If-None-Match") == etag:
                self.count("feed_304")
                handler.send_response(304)
                handler.send_header("ETag", etag)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            self.count("feed_200")
            self._send(handler, body, "application/rss+xml; charset=utf-8", etag=etag)
            return
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "a" and parts[2].isdigit():
            article = int(parts[2])
            if article < self.article_limit and parts[3] == f"{article % len(self.pages)}.html":
                self.count("article")
                # No charset: the worker sniffs it from the page, as on the real web.
                self._send(handler, page_bytes(self.pages, article), "text/html")
                return
        self.count("not_found")
        self._send(handler, b"not found", "text/plain", status=404)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        body: bytes,
        content_type: str,
        *,
        status: int = 200,
        etag: str | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if etag:
            handler.send_header("ETag", etag)
        handler.end_headers()
        handler.wfile.write(body)


def utc_now() -> datetime:
    return datetime.now(UTC)
