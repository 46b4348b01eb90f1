"""``ingest recrawl``, ``crawl-requests`` and ``reclassify``: work handed to the workers,
followed with a progress bar."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from .common import (
    EXIT_FAILED,
    JsonOpt,
    SinceOpt,
    TimeoutOpt,
    WaitOpt,
    console,
    emit_json,
    fail,
    follow,
    parsed,
    when,
    who,
)


def recrawl(
    feed: Annotated[str | None, typer.Option(help="Re-poll this feed by name.")] = None,
    url: Annotated[str | None, typer.Option(help="Fetch and extract this one page.")] = None,
    since: SinceOpt = None,
    force: Annotated[
        bool, typer.Option(help="Also re-fetch what is already stored (no cache, no skip).")
    ] = False,
    requested_by: Annotated[
        str | None, typer.Option(help="Recorded as who asked (default: $USER).")
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Enqueue a re-crawl of a feed, a URL, or everything seen since a date.

    The request is recorded in crawl_requests (who, when, what, progress) and
    expanded by a worker; with --wait a progress bar follows it to the end.
    """
    from .. import operations
    from ..schemas import RecrawlIn

    values = {
        "feed": feed,
        "url": url,
        "since": when(since),
        "force": force,
        "requested_by": who(requested_by),
    }
    request = parsed(RecrawlIn, values, {name: f"--{name}".replace("_", "-") for name in values})
    row = operations.submit_recrawl(request)
    if not wait:
        if as_json:
            emit_json(row.model_dump())
        else:
            console.print(f"queued crawl request {row.id}; follow: ingest crawl-requests {row.id}")
        return

    def poll() -> tuple[int, int, bool]:
        now = operations.crawl_request(row.id)
        return now.done + now.failed, now.total, now.status in ("done", "failed")

    finished = follow(f"re-crawl #{row.id} ({row.kind})", poll, timeout=timeout)
    row = operations.crawl_request(row.id)
    if as_json:
        emit_json(row.model_dump())
    else:
        console.print(
            f"crawl request {row.id}: {row.status}, {row.done} stored, "
            f"{row.failed} failed of {row.total}" + (f": {row.error}" if row.error else ""),
            markup=False,
        )
    if not finished:
        fail(f"still running after {timeout:.0f}s; see `ingest crawl-requests {row.id}`",
             code=EXIT_FAILED)  # fmt: skip
    if row.status == "failed":
        raise typer.Exit(EXIT_FAILED)


def crawl_requests(
    request_id: Annotated[int | None, typer.Argument(help="One request; default: recent.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show re-crawl requests with who asked and how far they got."""
    from .. import operations

    if request_id is not None:
        rows = [operations.crawl_request(request_id)]
    else:
        rows = operations.list_crawl_requests(limit=limit)
    if as_json:
        dumped = [r.model_dump() for r in rows]
        emit_json(dumped if request_id is None else dumped[0])
        return
    table = Table(
        "id", "by", "at", "kind", "target", "force", "status", "done/failed/total", "error"
    )  # fmt: skip
    for r in rows:
        table.add_row(
            str(r.id), r.requested_by, str(r.requested_at)[:19], r.kind, r.target[:60],
            "yes" if r.force else "", r.status, f"{r.done}/{r.failed}/{r.total}",
            Text((r.error or "")[:120]),
        )  # fmt: skip
    console.print(table)


def reclassify(
    all_articles: Annotated[
        bool, typer.Option("--all", help="Every article, not only older classifier versions.")
    ] = False,
    since: SinceOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Re-run the classifier over stored articles, in batches on the workers.

    By default only articles labelled by another classifier version are sent;
    the bar follows how many now carry the current version (with --all: how
    many were re-labelled since the command started).
    """
    from .. import operations
    from ..schemas import ReclassifyOut

    run = operations.start_reclassify(all_articles=all_articles, since=when(since))
    if not run.articles and not as_json:
        console.print(f"nothing to reclassify (all at {run.version})")
        return
    finished = True
    if wait and run.articles:

        def poll() -> tuple[int, int, bool]:
            done = operations.reclassify_done(run)
            return done, run.articles, done >= run.articles

        finished = follow("reclassify", poll, timeout=timeout)
    result = ReclassifyOut(
        articles=run.articles,
        version=run.version,
        batches=run.batches,
        done=operations.reclassify_done(run),
        finished=finished,
    )
    if as_json:
        emit_json(result.model_dump())
    else:
        console.print(
            f"reclassify: {result.done}/{result.articles} articles at {result.version} "
            f"({result.batches} batches)" + ("" if wait else " — queued")
        )
    if not finished:
        fail(f"not finished after {timeout:.0f}s; the workers keep going", code=EXIT_FAILED)
