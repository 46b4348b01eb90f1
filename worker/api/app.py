"""The app: the routers of each resource, who may call them, and request metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import compile_path

from .. import __version__, metrics
from ..broker import BrokerUnavailableError
from ..operations import BadInputError, ConflictError, NotFoundError, ResyncRequiredError
from ..settings import Settings, get_settings
from . import articles, changes, crawl_requests, feeds, ops, stories, subscriptions
from .deps import require_read, require_write
from .limits import RequestLimits
from .responses import LIMITS, TOKEN


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="ukraine-security-ingest read API",
        version=__version__,
        description="Articles and stories about Ukraine security, as stored by the ingest "
        "worker. Schema: docs/schema.md. Write endpoints need `Authorization: Bearer <token>`.",
        responses=LIMITS,
    )
    app.state.settings = settings
    # Reads declare the token (in the schema too) only when they need it: an open read
    # that advertised a bearer scheme would tell clients and fuzzers a false contract.
    guarded = settings.api_read_requires_token
    read = [Depends(require_read)] if guarded else []
    reads = (articles.reads, stories.reads, feeds.reads, crawl_requests.reads, changes.reads)
    for router in reads:
        app.include_router(
            router, dependencies=read, tags=["read"], responses=TOKEN if guarded else None
        )
    for router in (crawl_requests.writes, feeds.writes, subscriptions.writes):
        app.include_router(
            router, dependencies=[Depends(require_write)], tags=["write"], responses=TOKEN
        )
    app.include_router(ops.router, tags=["ops"])
    app.add_exception_handler(NotFoundError, _refused)
    app.add_exception_handler(BadInputError, _refused)
    app.add_exception_handler(BrokerUnavailableError, _refused)
    app.add_exception_handler(ResyncRequiredError, _resync)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    app.add_exception_handler(RequestValidationError, _invalid)
    # Inside _observe (the later a middleware is added, the further out it runs), so a
    # refused request is still counted, as route "unmatched".
    app.add_middleware(RequestLimits, max_body_bytes=settings.api_max_body_bytes)
    app.middleware("http")(_observe)
    return app


async def _refused(request: Request, exc: Exception) -> Response:
    """An operation's refusal as the status code that says what the client must do."""
    if isinstance(exc, NotFoundError):
        code, detail = status.HTTP_404_NOT_FOUND, f"no such {exc.kind}"
    elif isinstance(exc, ConflictError):
        code, detail = status.HTTP_409_CONFLICT, str(exc)
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


async def _invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, written as ASCII JSON. The errors echo the input, and JSON's
    escapes can carry a lone surrogate (``"\\ud800"``) that UTF-8 cannot encode, so
    FastAPI's own handler fails on it with a 500."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 whose ``Allow`` names every method the path takes. One path's methods live on
    different routers (``GET /feeds`` reads, ``POST /feeds`` writes), and Starlette's own
    405 names only those of the first route that matched; the published schema knows
    them all."""
    path = request.scope.get("path", "")
    allowed: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if compile_path(template)[0].match(path):
            allowed |= {method.upper() for method in operations}
    if "GET" in allowed:
        allowed.add("HEAD")
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(sorted(allowed))},
    )


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
