"""The app: the routers of each resource, who may call them, and request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse

from .. import __version__, metrics
from ..broker import BrokerUnavailableError
from ..operations import BadInputError, NotFoundError, ResyncRequiredError
from ..settings import Settings, get_settings
from . import articles, changes, crawl_requests, feeds, ops, stories, subscriptions
from .deps import require_read, require_write


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    app = FastAPI(
        title="ukraine-security-ingest read API",
        version=__version__,
        description="Articles and stories about Ukraine security, as stored by the ingest "
        "worker. Schema: docs/schema.md. Write endpoints need `Authorization: Bearer <token>`.",
    )
    app.state.settings = settings or get_settings()
    read, write = [Depends(require_read)], [Depends(require_write)]
    reads = (articles.reads, stories.reads, feeds.reads, crawl_requests.reads, changes.reads)
    for router in reads:
        app.include_router(router, dependencies=read, tags=["read"])
    for router in (crawl_requests.writes, feeds.writes, subscriptions.writes):
        app.include_router(router, dependencies=write, tags=["write"])
    app.include_router(ops.router, tags=["ops"])
    app.add_exception_handler(NotFoundError, _refused)
    app.add_exception_handler(BadInputError, _refused)
    app.add_exception_handler(BrokerUnavailableError, _refused)
    app.add_exception_handler(ResyncRequiredError, _resync)
    app.middleware("http")(_observe)
    return app


async def _refused(request: Request, exc: Exception) -> Response:
    """An operation's refusal as the status code that says what the client must do."""
    if isinstance(exc, NotFoundError):
        code, detail = status.HTTP_404_NOT_FOUND, f"no such {exc.kind}"
    elif isinstance(exc, BadInputError):
        code, detail = status.HTTP_400_BAD_REQUEST, str(exc)
    else:  # the broker is down: nothing was recorded, try again later
        code, detail = status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)
    return JSONResponse({"detail": detail}, status_code=code)


async def _resync(request: Request, exc: Exception) -> Response:
    """410 Gone: the reader's change-feed position is not in the log; the body says where
    to start again once it has reloaded its copy."""
    assert isinstance(exc, ResyncRequiredError)
    body = {
        "detail": str(exc),
        "resync": True,
        "reason": exc.reason,
        "horizon": exc.horizon,
        "head": exc.head,
    }
    return JSONResponse(body, status_code=status.HTTP_410_GONE)


async def _observe(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Count each request and time it, by route template (not by path: ids would
    make a new series per article)."""
    started = time.perf_counter()
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "unmatched")
    metrics.API_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    metrics.API_LATENCY.labels(route).observe(time.perf_counter() - started)
    return response
