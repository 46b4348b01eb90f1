"""Re-crawls: ``POST /recrawl`` records and enqueues one, ``/crawl-requests/{id}`` follows it."""

from __future__ import annotations

from fastapi import APIRouter, status

from .. import operations
from ..schemas import CrawlRequestOut, RecrawlIn
from .params import RowId
from .responses import BAD_INPUT, NOT_FOUND

reads = APIRouter()
writes = APIRouter()


@reads.get("/crawl-requests/{request_id}", response_model=CrawlRequestOut, responses=NOT_FOUND)
def get_crawl_request(request_id: RowId) -> CrawlRequestOut:
    """A re-crawl request and how far it got."""
    return operations.crawl_request(request_id)


@writes.post(
    "/recrawl",
    response_model=CrawlRequestOut,
    status_code=status.HTTP_202_ACCEPTED,
    # An unknown feed; a body that is not UTF-8 JSON; a dead broker is TOKEN's 503.
    responses={**NOT_FOUND, **BAD_INPUT},
)
def recrawl(body: RecrawlIn) -> CrawlRequestOut:
    """Enqueue a re-crawl of a feed, one URL, or everything seen since a time."""
    return operations.submit_recrawl(body)
