"""Structured logging: one JSON object per line on stderr, for machines to read.

Our own events go through structlog with the context bound by the task
wrappers (``task_id``, ``task``, ``feed_id``, ``entry_id``, ``url`` ...) merged
in. Libraries that log through the standard library (Celery, uvicorn, httpx)
are rendered by the same processors, so a log shipper sees one format, not
two. Keys are snake_case: ``event``, ``level``, ``timestamp``, ``logger``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_HANDLER_NAME = "ingest-structlog"


def _shared_processors() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is *now*, not the stream at configure time
    (test runners and the CLI runner swap it, and a closed stale stream would
    turn every log call into an error)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        return


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and the stdlib root logger, once per process, at start.

    Calling it again with the same settings is harmless (the CLI and the Celery
    app both call it). A different level does not reach module loggers that
    have already logged: structlog caches a logger's configuration on first use
    (``cache_logger_on_first_use``), which keeps every log call cheap.

    structlog events are handed to the standard library and rendered by the
    same formatter as library logs, so both share one handler and one format.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Per-request client chatter and access logs are noise at INFO; the
    # request metrics cover them.
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
