"""The plain script a user would write by hand: feedparser + httpx + trafilatura.

Run by bench/peers.py as a subprocess of the peers' interpreter (it imports
nothing from this project, so it also runs in the project's own venv):

    python bench/peer_plain.py --feeds feeds.json --out out.jsonl --processes 2

It fetches every feed, then every item's link in a process pool as wide as the
worker's, extracts the text with ``trafilatura.extract`` and appends one JSON
line per article to ``--out``. No dedup, no database, no retries: every item is
fetched and written, repeated URLs and syndicated copies included. That is the
point of the comparison: the cheapest thing that turns feeds into text.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from typing import Any

import feedparser
import httpx
import trafilatura

_client: httpx.Client | None = None


def _http() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(timeout=30.0, follow_redirects=True)
    return _client


def fetch_article(item: tuple[str, str]) -> dict[str, Any] | None:
    link, title = item
    try:
        response = _http().get(link)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    text = trafilatura.extract(response.text, url=link) or ""
    return {"url": link, "title": title, "body": text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", required=True, help="JSON file: a list of feed URLs")
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    with open(args.feeds) as f:
        feed_urls: list[str] = json.load(f)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.processes) as pool, open(args.out, "w") as out:
        items: list[tuple[str, str]] = []
        for url in feed_urls:
            parsed = feedparser.parse(_http().get(url).content)
            items.extend((e.link, e.get("title", "")) for e in parsed.entries)
        for record in pool.imap_unordered(fetch_article, items, chunksize=4):
            if record is None:
                continue
            record["written_at"] = time.time()
            out.write(json.dumps(record) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
