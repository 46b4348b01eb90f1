"""``ingest articles``, ``stories``, ``stats`` and ``health``: what is stored, and
whether the service can work.

``--json`` prints the API's shapes (:mod:`worker.schemas`), cut to the keys these
commands have always printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import EXIT_FAILED, JsonOpt, SinceOpt, check_label, console, emit_json, when
from .feeds import FEED_ROW

if TYPE_CHECKING:
    from ..schemas import ArticleOut

ARTICLE_ROW = {
    "id",
    "title",
    "canonical_url",
    "feed",
    "published_at",
    "language",
    "is_ukraine_security",
    "security_score",
    "topics",
    "story_id",
    "duplicate_of_id",
}
STORY_ROW = {
    "id",
    "title",
    "first_seen_at",
    "last_seen_at",
    "article_count",
    "source_count",
    "is_ukraine_security",
    "security_score",
    "topics",
}
STATS_FEED_ROW = FEED_ROW - {"id", "url"}
"""A feed's health in ``ingest stats --json``: as ``feeds list`` prints it, less id and url."""


def article_row(article: ArticleOut) -> dict[str, Any]:
    """The article as ``ingest articles --json`` prints it: its canonical URL as ``url``."""
    row = article.model_dump(include=ARTICLE_ROW)
    return {("url" if key == "canonical_url" else key): value for key, value in row.items()}


def articles(
    label: Annotated[
        str | None, typer.Option(help="Only this label: ukraine-security or other.")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Only with this topic.")] = None,
    feed: Annotated[str | None, typer.Option(help="Only from this feed (name).")] = None,
    language: Annotated[str | None, typer.Option(help="Only this language code.")] = None,
    since: SinceOpt = None,
    until: Annotated[str | None, typer.Option(help="Only before this time.")] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help='Full-text search: words (all must appear), "a phrase", -excluded, '
            "OR between alternatives; most relevant first.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored articles, newest first (by publication time), or the ones a search
    finds, most relevant first."""
    from .. import operations, store

    check_label(label)
    where = store.ArticleFilter(
        label=label,
        topic=topic,
        feed=feed,
        language=language,
        since=when(since),
        until=when(until, "--until"),
        query=query,
    )
    if feed is not None:
        operations.get_feed(feed)  # an unknown name is an error, not an empty list
    rows = [article_row(a) for a in operations.list_articles(where, limit=limit)[0]]
    if as_json:
        emit_json(rows)
        return
    print_articles(rows)


def print_articles(rows: list[dict[str, Any]]) -> None:
    """A table of article rows (``ingest articles``, ``ingest demo``)."""
    from ..schemas import label_of

    table = Table("id", "title", "label", "score", "topics")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["title"])[:80],
            label_of(row["is_ukraine_security"]),
            f"{row['security_score']:.2f}",
            ", ".join(row["topics"]),
        )
    console.print(table)


def stories(
    label: Annotated[str | None, typer.Option(help="ukraine-security or other.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only with this topic.")] = None,
    since: SinceOpt = None,
    min_articles: Annotated[int, typer.Option(min=1, help="Only stories this big.")] = 1,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List stories (clusters of copies of one report), newest first."""
    from .. import operations

    check_label(label)
    where = operations.StoryFilter(
        label=label, topic=topic, since=when(since), min_articles=min_articles
    )
    found, _ = operations.list_stories(where, limit=limit)
    if as_json:
        emit_json([s.model_dump(include=STORY_ROW) for s in found])
        return
    table = Table("id", "title", "articles", "sources", "label", "topics", "last seen")
    for s in found:
        table.add_row(
            str(s.id), s.title[:70], str(s.article_count), str(s.source_count), s.label,
            ", ".join(s.topics), str(s.last_seen_at)[:19],
        )  # fmt: skip
    console.print(table)


def stats(as_json: JsonOpt = False) -> None:
    """Per-feed health and counts, and totals for the whole database."""
    from .. import operations

    result = operations.stats()
    totals = result.totals
    feeds = [
        {**s.feed.model_dump(include=STATS_FEED_ROW), **s.model_dump(exclude={"feed"})}
        for s in result.feeds
    ]
    paused = result.paused_hosts
    if as_json:
        emit_json(
            {
                "totals": totals,
                "feeds": feeds,
                "paused_hosts": None if paused is None else [p.model_dump() for p in paused],
            }
        )
        return
    table = Table(
        "feed", "state", "errors", "last success", "polls 24h", "pending", "stored", "failed",
        "articles", "ukr-sec", title="feeds",
    )  # fmt: skip
    for f in feeds:
        table.add_row(
            f["name"], f["state"] + ("" if f["enabled"] else " (off)"), str(f["error_count"]),
            str(f["last_success_at"] or "-")[:19],
            f"{f['polls_24h']}" + (f" ({f['poll_errors_24h']} err)" * bool(f["poll_errors_24h"])),
            str(f["entries"].get("pending", 0)), str(f["entries"].get("stored", 0)),
            str(f["entries"].get("failed", 0)), str(f["articles"]), str(f["ukraine_security"]),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"articles {totals['articles']} (ukraine-security {totals['ukraine_security']}, "
        f"exact duplicates {totals['exact_duplicates']}), stories {totals['stories']}, "
        f"entries {totals['entries']}"
    )
    if paused is None:
        console.print("paused hosts: unknown (Redis did not answer)")
    for p in paused or []:
        console.print(
            f"paused host {p.host} ({p.seconds_left:.0f} s left): {p.reason}", markup=False
        )
    hooks = totals.get("subscriptions") or {}
    if hooks:
        paused = hooks.get("paused", 0)
        console.print(
            f"webhook subscriptions: {hooks.get('active', 0)} active, {paused} paused"
            + (" (see `ingest subscriptions list`)" if paused else "")
        )


def health(as_json: JsonOpt = False) -> None:
    """Check the database and the broker (container health checks use this)."""
    from .. import operations

    report = operations.health()
    if as_json:
        emit_json(report.model_dump())
    else:
        console.print(" ".join(f"{k}={v}" for k, v in report.model_dump().items()))
    if report.status != "ok":
        raise typer.Exit(EXIT_FAILED)
