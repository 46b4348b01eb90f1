"""The HTTP API for downstream apps (FastAPI): articles, stories, feeds, re-crawls,
health and metrics, served by ``ingest api``.

Reads and writes are the operations the CLI runs too (:mod:`worker.operations`),
with the shapes of :mod:`worker.schemas`; writes need the bearer token
``INGEST_API_TOKEN`` (:mod:`worker.api.deps`). One router per resource; the app is
built by :func:`create_app`, never at import time.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
