"""Re-crawls: ``POST /recrawl`` records and enqueues one, ``/crawl-requests/{id}`` follows it."""

from __future__ import annotations

from fastapi import APIRouter, status

from .. import operations
from ..schemas import CrawlRequestOut, RecrawlIn

reads = APIRouter()
writes = APIRouter()


@reads.get("/crawl-requests/{request_id}", response_model=CrawlRequestOut)
def get_crawl_request(request_id: int) -> CrawlRequestOut:
    """A re-crawl request and how far it got."""
    return operations.crawl_request(request_id)


@writes.post("/recrawl", response_model=CrawlRequestOut, status_code=status.HTTP_202_ACCEPTED)
def recrawl(body: RecrawlIn) -> CrawlRequestOut:
    """Enqueue a re-crawl of a feed, one URL, or everything seen since a time."""
    return operations.submit_recrawl(body)
