"""news-please over the benchmark's local feeds, its library API, results to JSON files.

Run by bench/peers.py with the peers' interpreter (scripts/peers-venv.sh):

    python bench/peer_newsplease.py --feeds feeds.json --out DIR

For each feed, the items' links go to ``NewsPlease.from_urls`` (news-please
1.6.16: one download thread per URL, then extraction in a
``ProcessPoolExecutor`` as wide as the CPU count, 2 here), and every article is
written as ``<n>.json`` into ``--out``, the way its own JSON storage pipeline
writes one file per article.

Why not its scrapy ``RssCrawler`` (the CLI with a ``sitelist.hjson``)? It starts
at a site's home page, looks for an ``application/rss+xml`` link there and
starts one scrapy crawler process per site: 200 local "sites" would be 200
scrapy start-ups on 2 cores, measuring scrapy's start-up rather than the
crawl. ``from_urls`` runs the same extractors (newspaper, readability, date,
language) on the same pages. ``fetch_images=False``: the pages' images live on
the real web, which this host cannot reach.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import feedparser
import requests
from newsplease import NewsPlease


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", required=True, help="JSON file: a list of feed URLs")
    parser.add_argument("--out", required=True, help="directory for one JSON file per article")
    args = parser.parse_args(argv)
    with open(args.feeds) as f:
        feed_urls: list[str] = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    written = 0
    for feed_url in feed_urls:
        feed = feedparser.parse(requests.get(feed_url, timeout=30).content)
        links = [entry.link for entry in feed.entries]
        # request_args must carry a timeout: from_urls reads it for each result
        # and, without one, silently returns {} for every article.
        articles = NewsPlease.from_urls(links, request_args={"timeout": 30}, fetch_images=False)
        for url, article in articles.items():
            if not article:
                continue
            record = article.get_serializable_dict()
            record["url"] = url
            record["written_at"] = time.time()
            with open(os.path.join(args.out, f"{written}.json"), "w") as out:
                json.dump(record, out, default=str)
            written += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
