"""Bounds on what one request may make the server read: its body and its query string.

The API is reachable by callers that send anything. Unbounded, FastAPI reads a whole
body into memory and parses it before any validation runs, so a 10 MB (or 10 GB) JSON
body costs that much before it is refused. Every body the API takes is a few hundred
bytes (a feed, a re-crawl, a subscription), so one past ``INGEST_API_MAX_BODY_BYTES``
is refused with 413: before it is read when ``Content-Length`` says so, or as soon as a
streamed (chunked) body grows past the bound. A query string past
:data:`MAX_QUERY_BYTES` is refused with 414 before routing: each parameter has its own
bound too (:mod:`worker.api.params`), this one caps how many of them one URL may
repeat. The HTTP server's own limit (h11: 16 KiB of a request line and headers it has
not finished reading) answers a bare 400 further out still.

Our own middleware rather than ``FastAPI(max_body_size=...)``: that one answers in
plain text or JSON depending on where the body was read, and the schema promises one
shape (``{"detail": ...}``). Plain ASGI, not ``BaseHTTPMiddleware``: it must wrap
``receive`` to count a streamed body.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_QUERY_BYTES = 12 * 1024
"""The longest query string accepted: past any real one, and past the longest every
parameter within its own bound can make (about 10 KiB, each character of a 500-character
search percent-encoded from four UTF-8 bytes), so only a URL that repeats parameters
meets it; under the HTTP server's own 16 KiB."""


class RequestLimits:
    """Refuse a body over ``max_body_bytes`` (413) or a query string over
    :data:`MAX_QUERY_BYTES` (414), before the app reads either."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            await _refuse(414, f"query string longer than {MAX_QUERY_BYTES} bytes", scope, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(413, self._too_large(), scope, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes"

    def _counting(self, receive: Receive) -> Receive:
        """``receive`` that stops a body with no declared length at the bound.

        The app reads a body before it answers, so the exception reaches FastAPI's
        handler for ``HTTPException`` and the client gets the 413 as JSON.
        """
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise HTTPException(413, self._too_large())
            return message

        return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length before we run
    return None


async def _refuse(status: int, detail: str, scope: Scope, send: Send) -> None:
    async def nothing() -> Message:  # the refusal reads nothing of the request
        return {"type": "http.disconnect"}

    await JSONResponse({"detail": detail}, status_code=status)(scope, nothing, send)
