"""Data access: every SQL write happens in this package, one module per table.

| module | writes | reads |
|---|---|---|
| :mod:`.feeds` | ``feeds`` (operator changes, beat claims, leases, the poll state machine) | |
| :mod:`.polls` | ``feed_polls`` (and their retention) | a feed's fetch history |
| :mod:`.entries` | ``entries`` (attempts, deferrals) | entries to process or re-crawl |
| :mod:`.articles` | ``articles``, ``stories``, ``article_bands`` | dedup candidates |
| :mod:`.crawl_requests` | ``crawl_requests`` | request progress |
| :mod:`.changes` | ``change_log`` (numbering; triggers add rows), ``change_log_state`` | changes |
| :mod:`.subscriptions` | ``subscriptions`` (webhook subscribers: position, lease, health) | due |
| :mod:`.queries` | nothing | listings, stats, counts for the CLI, API and metrics |
| :mod:`.search` | nothing (triggers keep the index) | the full-text filter and rank of a listing |
| :mod:`.sql` | ``locks`` (:func:`take_lock`) | dialect helpers shared by the writers |
| :mod:`.copy` | every table, of *another* database (``ingest db copy``) | every table |

Every write is safe to repeat: rows are found by their natural keys (feed URL,
entry key, canonical URL, feed+GUID) and updated instead of duplicated, and the
database's unique constraints back that up when two workers race. A module may
call another's functions (removing a feed removes its polls through
:mod:`.polls`), never write another's table itself.

Callers use the package's names (``store.save_article``); the modules are the
place to read and change them.
"""

from . import copy
from .articles import (
    ArticleRecord,
    SaveOutcome,
    recently_fetched_articles,
    refresh_story,
    save_article,
    update_classification,
)
from .changes import (
    CHANGE_KINDS,
    ChangeBatch,
    ChangeRecord,
    ResyncRequiredError,
    change_log_bounds,
    current_rows,
    has_pending_changes,
    lock_wait,
    prune_changes,
    read_changes,
    sequence_changes,
)
from .crawl_requests import (
    crawl_request_progress,
    create_crawl_request,
    fail_crawl_request,
    list_crawl_requests,
    queued_crawl_request_ids,
    start_crawl_request,
)
from .entries import (
    StoredMark,
    add_entries,
    add_url_entry,
    begin_entry_attempt,
    defer_entry,
    entries_to_process,
    entry_ids_for_request,
    entry_ids_since,
    mark_entries_stored,
    mark_entry_failed,
    mark_entry_stored,
    recent_feed_entry_ids,
    stale_pending_entry_ids,
    touch_entries,
)
from .feeds import (
    FeedUrlTakenError,
    PollTarget,
    acquire_feed_lease,
    disable_feed,
    due_claim_statement,
    due_feed_ids,
    enable_feed,
    feed_url_taken,
    get_feed_by_name,
    list_feeds,
    record_poll_failure,
    record_poll_success,
    release_feed_lease,
    release_feeds_after_restore,
    remove_feed,
    reschedule_throttled,
    start_poll,
    upsert_feed,
)
from .polls import FetchHistory, add_poll, fetch_history, prune_polls
from .queries import (
    LABEL_NEGATIVE,
    LABEL_POSITIVE,
    ArticleFilter,
    FeedStats,
    StoryFilter,
    article_ids_since,
    article_sort_key,
    count_outdated,
    count_touched,
    feed_health_counts,
    feed_names,
    feed_stats,
    list_articles,
    list_stories,
    story_articles,
    totals,
)
from .sql import as_utc, check_database, json_array_contains, take_lock
from .subscriptions import (
    acquire_subscription_lease,
    create_subscription,
    due_subscription_ids,
    get_subscription,
    has_active_subscriptions,
    list_subscriptions,
    pause_subscription,
    record_delivery,
    record_delivery_failure,
    release_subscription_lease,
    release_subscription_leases,
    remove_subscription,
    resume_subscription,
    subscription_counts,
)

__all__ = [
    "CHANGE_KINDS",
    "LABEL_NEGATIVE",
    "LABEL_POSITIVE",
    "ArticleFilter",
    "ArticleRecord",
    "ChangeBatch",
    "ChangeRecord",
    "FeedStats",
    "FeedUrlTakenError",
    "FetchHistory",
    "PollTarget",
    "ResyncRequiredError",
    "SaveOutcome",
    "StoredMark",
    "StoryFilter",
    "acquire_feed_lease",
    "acquire_subscription_lease",
    "add_entries",
    "add_poll",
    "add_url_entry",
    "article_ids_since",
    "article_sort_key",
    "as_utc",
    "begin_entry_attempt",
    "change_log_bounds",
    "check_database",
    "copy",
    "count_outdated",
    "count_touched",
    "crawl_request_progress",
    "create_crawl_request",
    "create_subscription",
    "current_rows",
    "defer_entry",
    "disable_feed",
    "due_claim_statement",
    "due_feed_ids",
    "due_subscription_ids",
    "enable_feed",
    "entries_to_process",
    "entry_ids_for_request",
    "entry_ids_since",
    "fail_crawl_request",
    "feed_health_counts",
    "feed_names",
    "feed_stats",
    "feed_url_taken",
    "fetch_history",
    "get_feed_by_name",
    "get_subscription",
    "has_active_subscriptions",
    "has_pending_changes",
    "json_array_contains",
    "list_articles",
    "list_crawl_requests",
    "list_feeds",
    "list_stories",
    "list_subscriptions",
    "lock_wait",
    "mark_entries_stored",
    "mark_entry_failed",
    "mark_entry_stored",
    "pause_subscription",
    "prune_changes",
    "prune_polls",
    "queued_crawl_request_ids",
    "read_changes",
    "recent_feed_entry_ids",
    "recently_fetched_articles",
    "record_delivery",
    "record_delivery_failure",
    "record_poll_failure",
    "record_poll_success",
    "refresh_story",
    "release_feed_lease",
    "release_feeds_after_restore",
    "release_subscription_lease",
    "release_subscription_leases",
    "remove_feed",
    "remove_subscription",
    "reschedule_throttled",
    "resume_subscription",
    "save_article",
    "sequence_changes",
    "stale_pending_entry_ids",
    "start_crawl_request",
    "start_poll",
    "story_articles",
    "subscription_counts",
    "take_lock",
    "totals",
    "touch_entries",
    "update_classification",
    "upsert_feed",
]
