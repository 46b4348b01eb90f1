"""Prometheus metrics for the worker and the read API.

Counters are incremented from pipeline *outcomes* in the thin Celery wrappers
(:mod:`worker.tasks`), never inside the pure core, so the core stays free of
I/O and global state. Task latency comes from Celery's task signals (connected by
:mod:`worker.tasks`, so the API, which imports this module, loads no Celery), and
every task is timed without each wrapper remembering to.

Celery's prefork pool runs tasks in child processes, whose counters the main
process cannot see. ``ingest worker`` therefore switches prometheus_client to
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``; children write their values to
files there) *before* this module is imported, and serves the merged view from
the main process on ``INGEST_METRICS_PORT``. The API is one process and serves
its own registry plus live database gauges (:class:`DatabaseCollector`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PORT_ENV = "INGEST_METRICS_PORT"

POLLS = Counter("ingest_feed_polls", "Feed polls by outcome.", ["status"])
FETCHES = Counter(
    "ingest_fetches",
    "HTTP fetches by kind (feed|page) and status (HTTP code, or the outcome for pages).",
    ["kind", "status"],
)
ARTICLES_STORED = Counter(
    "ingest_articles_stored", "Articles written, by action (created|updated|...).", ["action"]
)
DUPLICATES = Counter("ingest_duplicates", "New articles joined to an existing story.", ["kind"])
CLASSIFIER_POSITIVES = Counter(
    "ingest_classifier_positives", "Stored articles labelled ukraine-security."
)
ENTRIES_FAILED = Counter("ingest_entries_failed", "Entries given up on (permanent failures).")
ENTRIES_DEFERRED = Counter(
    "ingest_entries_deferred",
    "Entries held back until their host's pause ends (a 429, or its circuit breaker).",
)
ENTRIES_KNOWN_URL = Counter(
    "ingest_entries_known_url",
    "Entries linked to an article fetched recently from the same URL, without a fetch.",
)
WEBHOOK_DELIVERIES = Counter(
    "ingest_webhook_deliveries",
    "Webhook POSTs by outcome (delivered: a 2xx; failed: anything else).",
    ["outcome"],
)
TASK_LATENCY = Histogram(
    "ingest_task_duration_seconds",
    "Wall time of Celery tasks.",
    ["task", "state"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
API_REQUESTS = Counter(
    "ingest_api_requests", "Read API requests by route and status.", ["method", "route", "status"]
)
API_LATENCY = Histogram(
    "ingest_api_request_duration_seconds", "Read API request latency.", ["route"]
)


def record_poll(status: str, http_status: int | None) -> None:
    """Count one feed poll (``status`` is ok | not_modified | error | skipped)."""
    POLLS.labels(status=status).inc()
    if status != "skipped":
        FETCHES.labels(kind="feed", status=str(http_status or "error")).inc()


def record_entry(status: str, action: str | None, *, positive: bool | None) -> None:
    """Count one processed entry; ``positive`` is the stored article's label."""
    if status == "skipped":
        return
    if status == "deferred":  # no fetch went out; the entry comes back after the pause
        ENTRIES_DEFERRED.inc()
        return
    if action == "known_url":  # no fetch and no write of an article
        ENTRIES_KNOWN_URL.inc()
        return
    FETCHES.labels(kind="page", status=status).inc()
    if status != "stored":
        ENTRIES_FAILED.inc()
        return
    action = action or "unknown"
    ARTICLES_STORED.labels(action=action).inc()
    if action in ("duplicate", "near_duplicate"):
        DUPLICATES.labels(kind="exact" if action == "duplicate" else "near").inc()
    if positive:
        CLASSIFIER_POSITIVES.inc()


def record_webhooks(delivered: int, failed: int) -> None:
    """Count one delivery run's POSTs."""
    if delivered:
        WEBHOOK_DELIVERIES.labels(outcome="delivered").inc(delivered)
    if failed:
        WEBHOOK_DELIVERIES.labels(outcome="failed").inc(failed)


_task_started: dict[str, float] = {}


def on_task_prerun(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id:
        _task_started[task_id] = time.monotonic()


def on_task_postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_kwargs: Any
) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is not None and task is not None:
        TASK_LATENCY.labels(task=str(task.name), state=str(state or "UNKNOWN")).observe(
            time.monotonic() - started
        )


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def collecting_registry() -> CollectorRegistry:
    """This process's metrics, merged across processes in multiprocess mode."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def start_worker_server(port: int, *, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` from the worker's main process (all pool children merged)."""
    start_http_server(port, addr=addr, registry=collecting_registry())


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time: what is stored, not what one
    process did, so they are right however many workers run."""

    def __init__(self, totals: Callable[[], dict[str, Any]]) -> None:
        self._totals = totals

    def collect(self) -> Iterator[GaugeMetricFamily]:
        data = self._totals()
        articles = GaugeMetricFamily(
            "ingest_db_articles", "Stored articles by label.", labels=["label"]
        )
        articles.add_metric(["ukraine-security"], data["ukraine_security"])
        articles.add_metric(["other"], data["articles"] - data["ukraine_security"])
        yield articles
        yield GaugeMetricFamily("ingest_db_stories", "Stories.", value=data["stories"])
        yield GaugeMetricFamily(
            "ingest_db_exact_duplicates",
            "Articles that copy another.",
            value=data["exact_duplicates"],
        )
        entries = GaugeMetricFamily("ingest_db_entries", "Entries by status.", labels=["status"])
        for status, count in sorted(data["entries"].items()):
            entries.add_metric([status], count)
        yield entries
        feeds = GaugeMetricFamily("ingest_db_feeds", "Feeds by health state.", labels=["state"])
        for state, count in sorted(data["feeds"].items()):
            feeds.add_metric([state], count)
        yield feeds
        if "subscriptions" in data:
            subscriptions = GaugeMetricFamily(
                "ingest_db_subscriptions",
                "Webhook subscriptions by state (paused ones need an operator).",
                labels=["state"],
            )
            for state in ("active", "paused"):
                subscriptions.add_metric([state], data["subscriptions"].get(state, 0))
            yield subscriptions


def render(*registries: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of several registries, for an HTTP response."""
    return b"".join(generate_latest(r) for r in registries), CONTENT_TYPE_LATEST
