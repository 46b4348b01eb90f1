"""The refusals each route documents in ``/openapi.json``, next to its 200 and FastAPI's 422.

A client generated from the schema, or a fuzzer checking answers against it
(tests/integration/test_api_fuzz.py), must find every status the server can send: a
status missing here is a contract the server breaks. Each entry names the shape of the
body (:class:`~worker.schemas.ErrorOut`: ``{"detail": "..."}``) and when it happens.
"""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorOut

Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


BAD_INPUT: Responses = {400: _error("Input the caller must fix: the detail says what.")}
NOT_FOUND: Responses = {404: _error("No such row.")}
CONFLICT: Responses = {409: _error("Clashes with a stored row: another feed has that URL.")}
TOKEN: Responses = {
    401: _error("No bearer token."),
    403: _error("Wrong bearer token."),
    503: _error(
        "Disabled: the server has no INGEST_API_TOKEN (or, for POST /recrawl, the broker is "
        "down and nothing was recorded)."
    ),
}
LIMITS: Responses = {
    413: _error("The request body is larger than INGEST_API_MAX_BODY_BYTES (refused unread)."),
    414: _error("The query string is longer than the API accepts."),
}
