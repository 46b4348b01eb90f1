"""Orchestration: one function per unit of work, joining the pure core to the edges.

No Celery here: :mod:`worker.tasks` wraps these functions, and the demo, the
benchmark and the tests call them directly. Each function loads what it needs,
calls the pure stages (feeds, extract, urls, classify, dedup), and persists the
outcome through :mod:`worker.store`, recording failures on the feed or entry row
rather than losing them.

- :mod:`.polling`: one feed poll (:func:`poll_feed`); beat's claim of due feeds
  (:func:`claim_due_feeds`).
- :mod:`.entries`: one entry to a stored article (:func:`process_entry`, or
  :func:`prepare_entry` then :func:`store_prepared_batch` for a batch's entries).
- :mod:`.attempts`: the cap on started attempts that ends crash loops.
- :mod:`.recrawl`: an operator's re-crawl request expanded into entries.
- :mod:`.reclassify`: stored articles classified again.
- :mod:`.retention`: the hourly prune of old ``feed_polls`` (:func:`prune_feed_polls`).
"""

from .attempts import (
    broker_marks_redelivery,
    count_failed_attempt,
    counted_at_start,
    defer_attempt,
    give_up,
    start_attempt,
)
from .entries import (
    KNOWN_URL_NOTE,
    Delivery,
    EntryJob,
    EntryOutcome,
    PageFuture,
    PagePrefetcher,
    Prefetched,
    PreparedArticle,
    begin_entries,
    begin_entry,
    fetch_page,
    prepare_entry,
    process_entry,
    store_entry_article,
    store_prepared,
    store_prepared_batch,
)
from .polling import (
    FEED_LEASE_SECONDS,
    DueClaim,
    PollOutcome,
    claim_due_feeds,
    fetch_policy,
    poll_feed,
)
from .reclassify import reclassify_articles
from .recrawl import Expansion, expand_crawl_request
from .retention import PollPrune, prune_feed_polls

__all__ = [
    "FEED_LEASE_SECONDS",
    "KNOWN_URL_NOTE",
    "Delivery",
    "DueClaim",
    "EntryJob",
    "EntryOutcome",
    "Expansion",
    "PageFuture",
    "PagePrefetcher",
    "PollOutcome",
    "PollPrune",
    "Prefetched",
    "PreparedArticle",
    "begin_entries",
    "begin_entry",
    "broker_marks_redelivery",
    "claim_due_feeds",
    "count_failed_attempt",
    "counted_at_start",
    "defer_attempt",
    "expand_crawl_request",
    "fetch_page",
    "fetch_policy",
    "give_up",
    "poll_feed",
    "prepare_entry",
    "process_entry",
    "prune_feed_polls",
    "reclassify_articles",
    "start_attempt",
    "store_entry_article",
    "store_prepared",
    "store_prepared_batch",
]
