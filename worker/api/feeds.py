"""``/feeds``: the polled feeds with their health, and the operator's changes to them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from .. import operations
from ..schemas import FeedIn, FeedOut
from .responses import BAD_INPUT, CONFLICT, NOT_FOUND

reads = APIRouter()
writes = APIRouter()


@reads.get("/feeds", response_model=list[FeedOut])
def list_feeds() -> list[FeedOut]:
    """Every feed with its health."""
    return operations.list_feeds()


@writes.post(
    "/feeds",
    response_model=FeedOut,
    responses={
        201: {"model": FeedOut, "description": "A new feed was added."},
        **BAD_INPUT,  # a body that is not UTF-8 JSON
        **CONFLICT,
    },
)
def put_feed(body: FeedIn, response: Response) -> FeedOut:
    """Add a feed, or update the feed of that name."""
    feed, created = operations.save_feed(body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return feed


@writes.post("/feeds/{name}/enable", response_model=FeedOut, responses=NOT_FOUND)
def enable_feed(name: str) -> FeedOut:
    """Enable a feed and clear its failure state."""
    return operations.set_feed_enabled(name, enabled=True)


@writes.post("/feeds/{name}/disable", response_model=FeedOut, responses=NOT_FOUND)
def disable_feed(name: str) -> FeedOut:
    """Stop polling a feed."""
    return operations.set_feed_enabled(name, enabled=False)


@writes.delete("/feeds/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_feed(name: str) -> Response:
    """Delete a feed with its polls and entries (its articles stay)."""
    operations.remove_feed(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
