"""The chaos soak's news web: feeds that keep publishing, with the mess of the real web.

Built on :mod:`bench.newsweb` (real fundus and article-extraction-benchmark pages
served from memory on 127.0.0.1). A publisher thread adds an item to a random
feed every few seconds; each item is one of:

- ``fresh``: a new article with its own URL;
- ``copy``: a syndicated copy of an article already published (same page plus a
  partner note, another URL): the worker must put it in the same story;
- ``repeat``: an article another feed already links to (same URL): one article;
- ``retitle``: an item of this feed published again under a new title (same
  GUID, same URL): still one article;
- ``hostile``: a page that answers 404, 500, binary bytes, broken markup in a
  wrong encoding, a redirect loop, or slowly.

Every item ever published is remembered with its publication time, so the soak
can check afterwards that each one ended stored or failed with a reason.
"""

from __future__ import annotations

import hashlib
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.newsweb import NewsWeb, Page, article_path, page_bytes

HOSTILE_KINDS = ("404", "500", "binary", "mojibake", "loop", "slow")
KIND_WEIGHTS = {"fresh": 50, "copy": 15, "repeat": 10, "retitle": 10, "hostile": 15}


@dataclass
class Item:
    """One feed item as published: what the worker will see in the feed."""

    feed: str
    guid: str
    link: str
    title: str
    kind: str
    published_at: datetime
    hostile: str | None = None


@dataclass
class SoakWeb:
    """Feeds under ``/feed/<name>.xml``, articles under ``/a/…``, hostile pages under ``/h/…``."""

    pages: list[Page]
    feed_names: list[str]
    seed: int
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.web = NewsWeb(self.pages)
        self._inner = self.web._handle
        self.web._handle = self._handle  # type: ignore[method-assign]
        # Hostile pages live on a host of their own (127.0.0.2), as they would on the
        # web: a host that fails must pause itself (the circuit breaker), not the outlets.
        soak = self

        class Hostile(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def do_GET(self) -> None:
                soak._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A worker giving up on a slow page resets the connection: not worth a
                # traceback in the soak's output.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.hostile_server = Server(("127.0.0.2", 0), Hostile)
        self.items: list[Item] = []
        self.by_feed: dict[str, list[Item]] = {name: [] for name in self.feed_names}
        self._next_article = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.web.base_url

    @property
    def hostile_base_url(self) -> str:
        host, port = self.hostile_server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SoakWeb:
        self.web.start()
        threading.Thread(target=self.hostile_server.serve_forever, daemon=True).start()
        for name in self.feed_names:
            self._render(name)
        return self

    def stop(self) -> None:
        self.stop_publishing()
        self.web.stop()
        self.hostile_server.shutdown()
        self.hostile_server.server_close()

    def feed_url(self, name: str) -> str:
        return f"{self.base_url}/feed/{name}.xml"

    # --- publishing ------------------------------------------------------------

    def publish_every(self, mean_seconds: float) -> None:
        """Publish one item every ``mean_seconds`` on average, on a thread, until stopped."""

        def loop() -> None:
            while not self._halt.wait(self.rng.expovariate(1.0 / mean_seconds)):
                self.publish_one()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_publishing(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def publish_one(self, kind: str | None = None, feed: str | None = None) -> Item:
        with self._lock:
            feed = feed or self.rng.choice(self.feed_names)
            kind = kind or self.rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()))[0]
            item = self._make_item(feed, kind)
            self.items.append(item)
            feed_items = self.by_feed[feed]
            if item.kind == "retitle":
                # The same GUID again, re-titled: the feed shows the item once, new title.
                feed_items[:] = [i for i in feed_items if i.guid != item.guid]
            feed_items.append(item)
            self.counts[item.kind] = self.counts.get(item.kind, 0) + 1
            self._render(feed)
            return item

    def _make_item(self, feed: str, kind: str) -> Item:
        now = datetime.now(UTC)
        own = self.by_feed[feed]
        published = [i for i in self.items if i.kind in ("fresh", "copy") and i.feed != feed]
        if kind == "retitle" and own:
            old = self.rng.choice([i for i in own if not i.hostile] or own)
            title = f"{old.title.split(' [update')[0]} [update {self.rng.randrange(1000)}]"
            return Item(feed, old.guid, old.link, title, "retitle", now, old.hostile)
        if kind == "repeat" and published:
            other = self.rng.choice(published)
            return Item(feed, other.link, other.link, other.title, "repeat", now)
        if kind == "hostile":
            hostile = self.rng.choice(HOSTILE_KINDS)
            n = self._take_article()
            link = f"{self.hostile_base_url}/h/{hostile}/{n}.html"
            return Item(feed, link, link, f"Hostile page {n} ({hostile})", kind, now, hostile)
        if kind == "copy":
            originals = [i for i in self.items if i.kind == "fresh"]
            if originals:
                original = self.rng.choice(originals)
                article = int(original.link.split("/a/")[1].split("/")[0])
                # Article n + k*len(pages) shows the same page with a partner note.
                copy = article + len(self.pages) * (1 + self.rng.randrange(1, 1000))
                self.web.article_limit = max(self.web.article_limit, copy + 1)
                link = self.base_url + article_path(self.pages, copy)
                return Item(feed, link, link, self.pages[copy % len(self.pages)].title, kind, now)
        article = self._take_article()
        link = self.base_url + article_path(self.pages, article)
        title = self.pages[article % len(self.pages)].title
        return Item(feed, link, link, title, "fresh", now)

    def _take_article(self) -> int:
        article = self._next_article
        self._next_article += 1
        self.web.article_limit = max(self.web.article_limit, article + 1)
        return article

    def _render(self, feed: str) -> None:
        rows = []
        for item in reversed(self.by_feed[feed]):
            page = self.pages[0]
            if "/a/" in item.link:
                article = int(item.link.split("/a/")[1].split("/")[0])
                page = self.pages[article % len(self.pages)]
            rows.append(
                f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
                f'<guid isPermaLink="true">{escape(item.guid)}</guid>'
                f"<pubDate>{format_datetime(item.published_at, usegmt=True)}</pubDate>"
                f"<description>{escape(page.summary)}</description></item>"
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(feed)}</title><link>{self.base_url}/</link>"
            + "".join(rows)
            + "</channel></rss>"
        ).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        self.web.feeds[f"/feed/{feed}.xml"] = (body, etag)

    # --- serving ---------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if not path.startswith("/h/"):
            self._inner(handler)
            return
        parts = path.split("/")
        kind = parts[2] if len(parts) == 4 else "404"
        self.web.count(f"hostile_{kind}")
        if kind == "500":
            self.web._send(handler, b"upstream exploded", "text/plain", status=500)
        elif kind == "binary":
            self.web._send(handler, random.randbytes(50_000), "application/octet-stream")
        elif kind == "mojibake":
            body = (
                "<html><head><meta charset='utf-8'><title>Сломано</title></head><body><p>"
                + "Київ — Україна, переговори. " * 80
                + "<div><p><b>unclosed"
            ).encode("cp1251")
            self.web._send(handler, body, "text/html; charset=utf-8")  # fmt: skip
        elif kind == "loop":
            handler.send_response(302)
            handler.send_header("Location", path)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif kind == "slow":
            time.sleep(3.0)
            self.web._send(
                handler, page_bytes(self.pages, int(parts[3].split(".")[0])), "text/html"
            )
        else:
            self.web._send(handler, b"gone", "text/plain", status=404)


def summary(items: list[Item]) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for item in items:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    return {"items": len(items), "by_kind": kinds}
