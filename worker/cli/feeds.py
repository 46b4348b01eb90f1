"""``ingest feeds ...``: the feeds that are polled."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import EXIT_FAILED, JsonOpt, console, emit_json, fail, parsed

if TYPE_CHECKING:
    from ..schemas import FeedOut

FEED_ROW = {
    "id",
    "name",
    "url",
    "enabled",
    "state",
    "error_count",
    "last_error",
    "last_success_at",
    "next_poll_at",
}
"""What ``--json`` prints of a feed (in FeedOut's order)."""


def feed_row(feed: FeedOut) -> dict[str, Any]:
    return feed.model_dump(include=FEED_ROW)


def feeds_import(
    path: Annotated[Path, typer.Argument(help="TOML file with [[feed]] tables.")],
    as_json: JsonOpt = False,
) -> None:
    """Add or update every feed listed in a TOML file (idempotent)."""
    from .. import operations

    result = operations.import_feeds(path)
    if as_json:
        emit_json(result.model_dump())
    else:
        console.print(
            f"imported {result.created + result.updated} feeds "
            f"({result.created} new, {result.updated} updated)"
        )


def feeds_add(
    name: Annotated[str, typer.Argument(help="Unique short name.")],
    url: Annotated[str, typer.Argument(help="RSS/Atom URL.")],
    tags: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")] = None,
    interval: Annotated[int | None, typer.Option(help="Poll interval in seconds.")] = None,
    language: Annotated[str | None, typer.Option(help="Language code, e.g. en.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add one feed (or update the feed of that name)."""
    from .. import operations
    from ..schemas import FeedIn

    values = {
        "name": name,
        "url": url,
        "tags": tags or [],
        "poll_interval_seconds": interval,
        "language": language,
    }
    spec = parsed(
        FeedIn,
        values,
        {"tags": "--tag", "poll_interval_seconds": "--interval", "language": "--language"},
    )
    feed, created = operations.save_feed(spec)
    if as_json:
        emit_json({**feed.model_dump(include={"id", "name", "url"}), "created": created})
    else:
        console.print(f"{'added' if created else 'updated'} feed {feed.name} (id {feed.id})")


def feeds_list(as_json: JsonOpt = False) -> None:
    """Show every feed with its health and schedule."""
    from .. import operations

    feeds = operations.list_feeds()
    if as_json:
        emit_json([feed_row(f) for f in feeds])
        return
    table = Table("name", "state", "errors", "last success", "next poll", "last error")
    for f in feeds:
        table.add_row(
            f.name, f.state + ("" if f.enabled else " (off)"), str(f.error_count),
            str(f.last_success_at or "-"), str(f.next_poll_at or "-"), (f.last_error or "")[:60],
        )  # fmt: skip
    console.print(table)


def feeds_enable(name: str, as_json: JsonOpt = False) -> None:
    """Enable a feed and clear its failure state, so it is polled again at once."""
    _switch(name, enabled=True, as_json=as_json)


def feeds_disable(name: str, as_json: JsonOpt = False) -> None:
    """Stop polling a feed; its history and articles are kept."""
    _switch(name, enabled=False, as_json=as_json)


def _switch(name: str, *, enabled: bool, as_json: bool) -> None:
    from .. import operations

    feed = operations.set_feed_enabled(name, enabled=enabled)
    if as_json:
        emit_json(feed_row(feed))
    elif enabled:
        console.print(f"enabled feed {name} (state {feed.state})")
    else:
        console.print(f"disabled feed {name}")


def feeds_remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a feed with its polls and entries; its stored articles are kept."""
    from .. import operations

    operations.get_feed(name)  # an unknown name is an error before any question
    if not yes and not typer.confirm(f"remove feed {name!r} and its poll/entry history?"):
        fail("not removed", code=EXIT_FAILED)
    operations.remove_feed(name)
    console.print(f"removed feed {name}")
