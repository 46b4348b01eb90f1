"""The broker as the operator's doors see it: is it up, and hand it work.

Checking the broker (``ingest health``, ``GET /health``, and before anything is
recorded as requested) opens a plain kombu connection, so it builds no Celery app
and imports no task module; only :func:`submit_crawl_request` and
:func:`enqueue_reclassify` import :mod:`worker.tasks`, when they send something.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog

from . import store
from .db import session_scope
from .errors import TransientError
from .settings import get_settings

if TYPE_CHECKING:
    from celery import Task

log = structlog.get_logger(__name__)

RECLASSIFY_BATCH = 200


class BrokerUnavailableError(TransientError):
    """The broker did not answer: nothing was enqueued."""

    error_class = "broker_unavailable"


def check_broker(timeout: float = 3.0) -> None:
    """Fail fast (``BrokerUnavailableError``) instead of hanging on a dead broker."""
    from kombu.connection import Connection

    url = get_settings().broker_url
    try:
        with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:  # kombu raises transport-specific errors
        raise BrokerUnavailableError(f"broker unreachable: {exc}", url=_redact(url)) from exc


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def _broker_connection(task: Task) -> Any:
    """A connection to the broker the settings name *now*, with the app's transport
    options (the app's own is fixed at import, and a test or a long-lived API process
    may point elsewhere)."""
    return task.app.connection_for_write(url=get_settings().broker_url)


def submit_crawl_request(*, kind: str, target: str, force: bool, requested_by: str) -> int:
    """Record who asked to re-crawl what, then hand it to the workers; returns its id."""
    from .tasks import run_crawl_request

    with session_scope() as session:
        request = store.create_crawl_request(
            session, requested_by=requested_by, kind=kind, target=target, force=force
        )
        assert request.id is not None
        if kind == "url":
            store.add_url_entry(session, url=target, crawl_request_id=request.id)
        request_id = request.id
    with _broker_connection(run_crawl_request) as connection:
        run_crawl_request.apply_async((request_id,), connection=connection)
    log.info("crawl_request_submitted", crawl_request_id=request_id, kind=kind, target=target)
    return request_id


def enqueue_reclassify(article_ids: list[int], *, batch: int = RECLASSIFY_BATCH) -> int:
    """Send ``reclassify_batch`` tasks of ``batch`` ids; returns how many were sent."""
    from .tasks import reclassify_batch

    sent = 0
    with _broker_connection(reclassify_batch) as connection:
        for start in range(0, len(article_ids), batch):
            reclassify_batch.apply_async(
                (article_ids[start : start + batch],), connection=connection
            )
            sent += 1
    return sent
