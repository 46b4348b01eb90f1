"""``ingest``: the operator's command line. No logic of its own: it parses
arguments, calls the store/pipeline/Celery, and prints results (``--json`` for
scripts). Bad input exits non-zero with a one-line error, never a traceback.

Exit codes: 0 ok; 1 the work failed or timed out; 2 bad input (unknown feed,
bad date, bad URL — the same code typer uses for usage errors); 3 the broker
is unreachable, so nothing was enqueued.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

app = typer.Typer(help="Ukraine-security news ingestion worker.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
feeds_app = typer.Typer(help="Manage the feeds that are polled.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(feeds_app, name="feeds")

console = Console()
err_console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKER = 3

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SinceOpt = Annotated[
    str | None,
    typer.Option(help="Only since this time: 2026-05-01, 2026-05-01T12:00, or 6h / 2d / 1w ago."),
]
WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Follow progress until done (default) or return.")
]
TimeoutOpt = Annotated[float, typer.Option(help="With --wait: give up waiting after seconds.")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=2) + "\n")


def _setup_logging() -> None:
    from .logging import configure_logging
    from .settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)


_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, option: str = "--since") -> datetime:
    """An ISO date/datetime (UTC unless it says otherwise) or ``N[mhdw]`` ago."""
    match = _RELATIVE.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return datetime.now(UTC) - delta
    try:
        if len(value.strip()) == 10:
            day = date.fromisoformat(value.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option}: bad date {value!r} (use 2026-05-01, 2026-05-01T12:00Z or 2d)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _opt_when(value: str | None, option: str = "--since") -> datetime | None:
    return None if value is None else parse_when(value, option=option)


def _check_label(label: str | None) -> None:
    from .schemas import LABELS

    if label not in (None, *LABELS):
        fail("--label must be 'ukraine-security' or 'other'")


@contextmanager
def _session() -> Iterator[Any]:
    """A database session; an unreachable database is exit 1 with a message."""
    import sqlalchemy.exc

    from .db import session_scope

    try:
        with session_scope() as session:
            yield session
    except sqlalchemy.exc.OperationalError as exc:
        fail(f"database unavailable: {exc.orig or exc}", code=EXIT_FAILED)


def _require_feed(session: Any, name: str) -> Any:
    from . import store

    feed = store.get_feed_by_name(session, name)
    if feed is None:
        fail(f"unknown feed {name!r} (see `ingest feeds list`)")
    return feed


def _require_broker() -> None:
    from .broker import BrokerUnavailableError, check_broker

    try:
        check_broker()
    except BrokerUnavailableError as exc:
        fail(f"{exc} — is Redis running? (INGEST_BROKER_URL)", code=EXIT_BROKER)


def _who(requested_by: str | None) -> str:
    if requested_by:
        return requested_by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _follow(
    description: str,
    poll: Callable[[], tuple[int, int, bool]],
    *,
    timeout: float,
    interval: float = 0.5,
) -> bool:
    """Show a progress bar fed by ``poll() -> (completed, total, finished)``."""
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task(description, total=None)
        while True:
            completed, total, finished = poll()
            progress.update(task, completed=completed, total=total or None)
            if finished:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


# --- database and feeds -------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply Alembic migrations up to REVISION (default: head)."""
    import sqlalchemy.exc

    from . import migrate

    try:
        migrate.upgrade(revision=revision)
    except sqlalchemy.exc.OperationalError as exc:
        fail(f"database unavailable: {exc.orig or exc}", code=EXIT_FAILED)
    console.print(f"database at revision {revision}")


@feeds_app.command("import")
def feeds_import(
    path: Annotated[Path, typer.Argument(help="TOML file with [[feed]] tables.")],
    as_json: JsonOpt = False,
) -> None:
    """Add or update every feed listed in a TOML file (idempotent)."""
    from . import store
    from .feedconfig import FeedConfigError, load_feed_specs

    try:
        specs = load_feed_specs(path)
    except FeedConfigError as exc:
        fail(str(exc))
    created = updated = 0
    with _session() as session:
        for spec in specs:
            _feed, was_created = store.upsert_feed(
                session,
                name=spec.name,
                url=spec.url,
                tags=spec.tags,
                language=spec.language,
                poll_interval_seconds=spec.poll_interval_seconds,
                enabled=spec.enabled,
            )
            created += was_created
            updated += not was_created
    if as_json:
        _emit_json({"created": created, "updated": updated})
    else:
        console.print(f"imported {len(specs)} feeds ({created} new, {updated} updated)")


@feeds_app.command("add")
def feeds_add(
    name: Annotated[str, typer.Argument(help="Unique short name.")],
    url: Annotated[str, typer.Argument(help="RSS/Atom URL.")],
    tags: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")] = None,
    interval: Annotated[int | None, typer.Option(help="Poll interval in seconds.")] = None,
    language: Annotated[str | None, typer.Option(help="Language code, e.g. en.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add one feed (or update the feed of that name)."""
    from pydantic import ValidationError

    from . import store
    from .schemas import FeedIn, describe

    try:
        spec = FeedIn(
            name=name,
            url=url,
            tags=tags or [],
            poll_interval_seconds=interval,
            language=language,
        )
    except ValidationError as exc:
        fail(describe(exc))
    with _session() as session:
        feed, created = store.upsert_feed(
            session,
            name=spec.name,
            url=spec.url,
            tags=spec.tags,
            language=spec.language,
            poll_interval_seconds=spec.poll_interval_seconds,
        )
        row = {"id": feed.id, "name": feed.name, "url": feed.url, "created": created}
    if as_json:
        _emit_json(row)
    else:
        console.print(f"{'added' if created else 'updated'} feed {row['name']} (id {row['id']})")


def _feed_row(feed: Any) -> dict[str, Any]:
    return {
        "id": feed.id,
        "name": feed.name,
        "url": feed.url,
        "enabled": feed.enabled,
        "state": feed.state,
        "error_count": feed.error_count,
        "last_error": feed.last_error,
        "last_success_at": feed.last_success_at,
        "next_poll_at": feed.next_poll_at,
    }


@feeds_app.command("list")
def feeds_list(as_json: JsonOpt = False) -> None:
    """Show every feed with its health and schedule."""
    from . import store

    with _session() as session:
        rows = [_feed_row(f) for f in store.list_feeds(session)]
    if as_json:
        _emit_json(rows)
        return
    table = Table("name", "state", "errors", "last success", "next poll", "last error")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["state"]) + ("" if row["enabled"] else " (off)"),
            str(row["error_count"]),
            str(row["last_success_at"] or "-"),
            str(row["next_poll_at"] or "-"),
            (str(row["last_error"] or ""))[:60],
        )
    console.print(table)


@feeds_app.command("enable")
def feeds_enable(name: str, as_json: JsonOpt = False) -> None:
    """Enable a feed and clear its failure state, so it is polled again at once."""
    from . import store

    with _session() as session:
        _require_feed(session, name)
        feed = store.enable_feed(session, name)
        row = _feed_row(feed)
    if as_json:
        _emit_json(row)
    else:
        console.print(f"enabled feed {name} (state {row['state']})")


@feeds_app.command("disable")
def feeds_disable(name: str, as_json: JsonOpt = False) -> None:
    """Stop polling a feed; its history and articles are kept."""
    from . import store

    with _session() as session:
        _require_feed(session, name)
        row = _feed_row(store.disable_feed(session, name))
    if as_json:
        _emit_json(row)
    else:
        console.print(f"disabled feed {name}")


@feeds_app.command("remove")
def feeds_remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a feed with its polls and entries; its stored articles are kept."""
    from . import store

    with _session() as session:
        _require_feed(session, name)
    if not yes and not typer.confirm(f"remove feed {name!r} and its poll/entry history?"):
        fail("not removed", code=EXIT_FAILED)
    with _session() as session:
        store.remove_feed(session, name)
    console.print(f"removed feed {name}")


# --- re-crawl and reclassify ------------------------------------------------------------


def _crawl_row(request: Any) -> dict[str, Any]:
    return {
        "id": request.id,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "kind": request.kind,
        "target": request.target,
        "force": request.force,
        "status": request.status,
        "total": request.total,
        "done": request.done,
        "failed": request.failed,
        "finished_at": request.finished_at,
        "error": request.error,
    }


def _crawl_snapshot(request_id: int) -> dict[str, Any]:
    from . import store

    with _session() as session:
        request = store.crawl_request_progress(session, request_id)
        if request is None:
            fail(f"unknown crawl request {request_id}")
        return _crawl_row(request)


@app.command("recrawl")
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
    from urllib.parse import urlsplit

    from .broker import submit_crawl_request

    chosen = [(k, v) for k, v in (("feed", feed), ("url", url), ("since", since)) if v]
    if len(chosen) != 1:
        fail("give exactly one of --feed NAME, --url URL or --since DATE")
    kind, target = chosen[0]
    if kind == "feed":
        with _session() as session:
            _require_feed(session, target)
    elif kind == "url":
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            fail(f"--url: not an http(s) URL: {target!r}")
    else:
        target = parse_when(target).isoformat()
    _require_broker()
    request_id = submit_crawl_request(
        kind=kind, target=target, force=force, requested_by=_who(requested_by)
    )
    if wait:

        def poll() -> tuple[int, int, bool]:
            row = _crawl_snapshot(request_id)
            finished = row["status"] in ("done", "failed")
            return row["done"] + row["failed"], row["total"], finished

        finished = _follow(f"re-crawl #{request_id} ({kind})", poll, timeout=timeout)
        row = _crawl_snapshot(request_id)
        if as_json:
            _emit_json(row)
        else:
            console.print(
                f"crawl request {request_id}: {row['status']}, {row['done']} stored, "
                f"{row['failed']} failed of {row['total']}"
                + (f": {row['error']}" if row["error"] else ""),
                markup=False,
            )
        if not finished:
            fail(f"still running after {timeout:.0f}s; see `ingest crawl-requests {request_id}`",
                 code=EXIT_FAILED)  # fmt: skip
        if row["status"] == "failed":
            raise typer.Exit(EXIT_FAILED)
        return
    if as_json:
        _emit_json(_crawl_snapshot(request_id))
    else:
        console.print(
            f"queued crawl request {request_id}; follow: ingest crawl-requests {request_id}"
        )


@app.command("crawl-requests")
def crawl_requests(
    request_id: Annotated[int | None, typer.Argument(help="One request; default: recent.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show re-crawl requests with who asked and how far they got."""
    from . import store

    if request_id is not None:
        rows = [_crawl_snapshot(request_id)]
    else:
        with _session() as session:
            ids = [r.id for r in store.list_crawl_requests(session, limit=limit) if r.id]
        rows = [_crawl_snapshot(i) for i in ids]
    if as_json:
        _emit_json(rows if request_id is None else rows[0])
        return
    table = Table(
        "id", "by", "at", "kind", "target", "force", "status", "done/failed/total", "error"
    )  # fmt: skip
    for r in rows:
        table.add_row(
            str(r["id"]), r["requested_by"], str(r["requested_at"])[:19], r["kind"],
            str(r["target"])[:60], "yes" if r["force"] else "", r["status"],
            f"{r['done']}/{r['failed']}/{r['total']}", Text(str(r["error"] or "")[:120]),
        )  # fmt: skip
    console.print(table)


@app.command("reclassify")
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
    from . import store
    from .broker import RECLASSIFY_BATCH, enqueue_reclassify
    from .classify import classifier_version
    from .models import utcnow
    from .settings import get_settings

    version = classifier_version(get_settings().classifier)
    since_at = _opt_when(since)
    with _session() as session:
        ids = store.article_ids_since(
            session,
            since=since_at,
            only_outdated_version=None if all_articles else version,
        )
    summary: dict[str, Any] = {"articles": len(ids), "version": version, "batches": 0}
    if not ids:
        if as_json:
            _emit_json({**summary, "done": 0, "finished": True})
        else:
            console.print(f"nothing to reclassify (all at {version})")
        return
    _require_broker()
    started = utcnow() - timedelta(seconds=1)
    max_id = max(ids)
    summary["batches"] = enqueue_reclassify(ids, batch=RECLASSIFY_BATCH)
    total = len(ids)

    def done_count() -> int:
        with _session() as session:
            if all_articles:
                n = store.count_touched(
                    session, updated_since=started, since=since_at, max_id=max_id
                )
            else:
                remaining = store.count_outdated(session, version=version, since=since_at)
                n = total - remaining
        return max(0, min(total, n))

    finished = True
    if wait:

        def poll() -> tuple[int, int, bool]:
            n = done_count()
            return n, total, n >= total

        finished = _follow("reclassify", poll, timeout=timeout)
    result = {**summary, "done": done_count(), "finished": finished}
    if as_json:
        _emit_json(result)
    else:
        console.print(
            f"reclassify: {result['done']}/{total} articles at {version} "
            f"({summary['batches']} batches)" + ("" if wait else " — queued")
        )
    if not finished:
        fail(f"not finished after {timeout:.0f}s; the workers keep going", code=EXIT_FAILED)


# --- reading ----------------------------------------------------------------------------


def _article_row(article: Any, feeds: dict[int, str]) -> dict[str, Any]:
    return {
        "id": article.id,
        "title": article.title,
        "url": article.canonical_url,
        "feed": feeds.get(article.feed_id) if article.feed_id is not None else None,
        "published_at": article.published_at,
        "language": article.language,
        "is_ukraine_security": article.is_ukraine_security,
        "security_score": article.security_score,
        "topics": article.topics,
        "story_id": article.story_id,
        "duplicate_of_id": article.duplicate_of_id,
    }


@app.command("articles")
def articles(
    label: Annotated[
        str | None, typer.Option(help="Only this label: ukraine-security or other.")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Only with this topic.")] = None,
    feed: Annotated[str | None, typer.Option(help="Only from this feed (name).")] = None,
    language: Annotated[str | None, typer.Option(help="Only this language code.")] = None,
    since: SinceOpt = None,
    until: Annotated[str | None, typer.Option(help="Only before this time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored articles, newest first (by publication time)."""
    from . import store

    _check_label(label)
    where = store.ArticleFilter(
        label=label,
        topic=topic,
        feed=feed,
        language=language,
        since=_opt_when(since),
        until=_opt_when(until, "--until"),
    )
    with _session() as session:
        if feed is not None:
            _require_feed(session, feed)
        names = store.feed_names(session)
        rows = [_article_row(a, names) for a, _ in store.list_articles(session, where=where,
                                                                         limit=limit)]  # fmt: skip
    if as_json:
        _emit_json(rows)
        return
    _print_articles(rows)


def _print_articles(rows: list[dict[str, Any]]) -> None:
    from .schemas import label_of

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


@app.command("stories")
def stories(
    label: Annotated[str | None, typer.Option(help="ukraine-security or other.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only with this topic.")] = None,
    since: SinceOpt = None,
    min_articles: Annotated[int, typer.Option(min=1, help="Only stories this big.")] = 1,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List stories (clusters of copies of one report), newest first."""
    from . import store
    from .schemas import label_of

    _check_label(label)
    with _session() as session:
        found = store.list_stories(
            session,
            label=label,
            topic=topic,
            since=_opt_when(since),
            min_articles=min_articles,
            limit=limit,
        )
        rows: list[dict[str, Any]] = [
            {
                "id": s.id,
                "title": s.title,
                "first_seen_at": s.first_seen_at,
                "last_seen_at": s.last_seen_at,
                "article_count": s.article_count,
                "source_count": s.source_count,
                "is_ukraine_security": s.is_ukraine_security,
                "security_score": s.security_score,
                "topics": s.topics,
            }
            for s in found
        ]
    if as_json:
        _emit_json(rows)
        return
    table = Table("id", "title", "articles", "sources", "label", "topics", "last seen")
    for r in rows:
        table.add_row(
            str(r["id"]), str(r["title"])[:70], str(r["article_count"]), str(r["source_count"]),
            label_of(r["is_ukraine_security"]), ", ".join(r["topics"]), str(r["last_seen_at"])[:19],
        )  # fmt: skip
    console.print(table)


@app.command("stats")
def stats(as_json: JsonOpt = False) -> None:
    """Per-feed health and counts, and totals for the whole database."""
    from . import store

    with _session() as session:
        totals = store.totals(session)
        feeds: list[dict[str, Any]] = [
            {
                "name": s.feed.name,
                "enabled": s.feed.enabled,
                "state": s.feed.state,
                "error_count": s.feed.error_count,
                "last_error": s.feed.last_error,
                "last_success_at": s.feed.last_success_at,
                "next_poll_at": s.feed.next_poll_at,
                "polls_24h": s.polls_24h,
                "poll_errors_24h": s.poll_errors_24h,
                "entries": s.entries,
                "articles": s.articles,
                "ukraine_security": s.positives,
            }
            for s in store.feed_stats(session)
        ]
    if as_json:
        _emit_json({"totals": totals, "feeds": feeds})
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


@app.command("health")
def health(as_json: JsonOpt = False) -> None:
    """Check the database and the broker (container health checks use this)."""
    from .operations import health

    report = health()
    if as_json:
        _emit_json(report.model_dump())
    else:
        console.print(" ".join(f"{k}={v}" for k, v in report.model_dump().items()))
    if report.status != "ok":
        raise typer.Exit(EXIT_FAILED)


# --- long-running processes ---------------------------------------------------------------


@app.command("api")
def api_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the read API (and /metrics) with uvicorn."""
    _setup_logging()
    import uvicorn

    from .api import create_app

    uvicorn.run(create_app(), host=host, port=port, log_config=None, access_log=False)


@app.command("demo")
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Where to keep the demo database (default: a temp dir).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 180.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the real pipeline over the seed feed, with no Redis and no Docker."""
    from .demo import run_demo

    target = workdir or Path(tempfile.mkdtemp(prefix="ingest-demo-"))
    try:
        rows = run_demo(target, timeout=timeout)
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        fail(str(exc), code=EXIT_FAILED)
    if as_json:
        _emit_json(rows)
    else:
        console.print(f"demo database: {target / 'demo.db'}")
        _print_articles(rows)
    if not rows:
        fail("the pipeline stored no article", code=EXIT_FAILED)


def _start_worker_metrics() -> None:
    """Serve merged pool metrics on INGEST_METRICS_PORT, if set.

    prometheus_client picks its multiprocess mode when it is first imported,
    so PROMETHEUS_MULTIPROC_DIR is set (and emptied of a previous run's files)
    here, before anything imports it.
    """
    from .settings import get_settings

    port = get_settings().metrics_port
    if port is None:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ingest-metrics-")
    from . import metrics

    metrics.start_worker_server(port)


def _celery_argv(extra: list[str] | None) -> list[str]:
    return list(extra or [])


_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("worker", context_settings=_PASSTHROUGH)
def worker_cmd(ctx: typer.Context) -> None:
    """Run a Celery worker (extra arguments go to `celery worker`)."""
    _start_worker_metrics()
    _setup_logging()
    from .celery_app import app as celery_app

    celery_app.worker_main(["worker", "--loglevel", "INFO", *_celery_argv(ctx.args)])


@app.command("beat", context_settings=_PASSTHROUGH)
def beat_cmd(ctx: typer.Context) -> None:
    """Run the beat scheduler (exactly one per deployment)."""
    _setup_logging()
    from .celery_app import app as celery_app

    celery_app.start(["beat", "--loglevel", "INFO", *_celery_argv(ctx.args)])


@app.command("run", context_settings=_PASSTHROUGH)
def run_cmd(ctx: typer.Context) -> None:
    """Run a worker with embedded beat: one process that does everything."""
    _start_worker_metrics()
    _setup_logging()
    from .celery_app import app as celery_app

    celery_app.worker_main(["worker", "--beat", "--loglevel", "INFO", *_celery_argv(ctx.args)])


def main() -> None:
    """Entry point: refuse bad ``INGEST_*`` settings with one line each, not a traceback."""
    from pydantic import ValidationError

    from .settings import get_settings

    try:
        get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]).upper() if error["loc"] else "*"
            err_console.print(f"[bold red]error:[/] INGEST_{field}: {error['msg']}")
        sys.exit(EXIT_BAD_INPUT)
    app()


if __name__ == "__main__":
    main()
