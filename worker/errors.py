"""Errors typed by what the worker must do next.

A task never has to guess from an exception's message whether to retry: a
:class:`TransientError` means "the same request may succeed later" (timeouts,
5xx, 429, a database that is briefly away) and is retried with backoff; a
:class:`PermanentError` means "asking again will not help" (404, a page that is
not HTML, a URL we refuse to fetch) and is recorded and dropped.
"""

from __future__ import annotations

ERROR_TEXT_MAX_CHARS = 4000
"""Cap on an error message stored in the database (``entries.error``, ``feeds.last_error``,
``crawl_requests.error``): enough for a chained exception, bounded against a hostile
server echoing a megabyte into its error page."""


class IngestError(Exception):
    """Base class: carries a short machine-readable ``error_class`` and context."""

    error_class = "error"

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        error_class: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status
        self.retry_after = retry_after
        if error_class is not None:
            self.error_class = error_class

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.url is not None:
            parts.append(f"url={self.url}")
        return " ".join(parts)


class TransientError(IngestError):
    """May succeed if tried again later; tasks retry these with backoff."""

    error_class = "transient"


class PermanentError(IngestError):
    """Will not succeed by retrying; recorded against the feed or URL and dropped."""

    error_class = "permanent"


THROTTLE_CLASSES = frozenset({"host_throttled", "host_paused", "limiter_unavailable"})
"""Refusals by our own per-host limiter, not failures of the server: the host's turn is
too far away, the host is paused (a 429, or the circuit breaker), or the limiter is away."""


def is_throttle(exc: IngestError) -> bool:
    """Our limiter, not the server, refused: reschedule or defer, don't count a failure."""
    return exc.error_class in THROTTLE_CLASSES
