"""``ingest``: the operator's command line. No logic of its own: it parses
arguments, calls the store/pipeline/Celery, and prints results (``--json`` for
scripts). Bad input exits non-zero with a one-line error, never a traceback.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Ukraine-security news ingestion worker.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
feeds_app = typer.Typer(help="Manage the feeds that are polled.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(feeds_app, name="feeds")

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=2) + "\n")


def _setup_logging() -> None:
    from .logging import configure_logging
    from .settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply Alembic migrations up to REVISION (default: head)."""
    from . import migrate

    migrate.upgrade(revision=revision)
    console.print(f"database at revision {revision}")


@feeds_app.command("import")
def feeds_import(
    path: Annotated[Path, typer.Argument(help="TOML file with [[feed]] tables.")],
    as_json: JsonOpt = False,
) -> None:
    """Add or update every feed listed in a TOML file (idempotent)."""
    from . import store
    from .db import session_scope
    from .feedconfig import FeedConfigError, load_feed_specs

    try:
        specs = load_feed_specs(path)
    except FeedConfigError as exc:
        fail(str(exc))
    created = updated = 0
    with session_scope() as session:
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
) -> None:
    """Add one feed (or update the feed of that name)."""
    from pydantic import ValidationError

    from . import store
    from .db import session_scope
    from .feedconfig import FeedSpec

    try:
        spec = FeedSpec(name=name, url=url, tags=tags or [], poll_interval_seconds=interval)
    except ValidationError as exc:
        fail("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors()))
    with session_scope() as session:
        feed, created = store.upsert_feed(
            session,
            name=spec.name,
            url=spec.url,
            tags=spec.tags,
            poll_interval_seconds=spec.poll_interval_seconds,
        )
    console.print(f"{'added' if created else 'updated'} feed {feed.name} (id {feed.id})")


@feeds_app.command("list")
def feeds_list(as_json: JsonOpt = False) -> None:
    """Show every feed with its health and schedule."""
    from . import store
    from .db import session_scope

    with session_scope() as session:
        feeds = store.list_feeds(session)
    rows = [
        {
            "id": f.id,
            "name": f.name,
            "url": f.url,
            "enabled": f.enabled,
            "state": f.state,
            "error_count": f.error_count,
            "last_error": f.last_error,
            "last_success_at": f.last_success_at,
            "next_poll_at": f.next_poll_at,
        }
        for f in feeds
    ]
    if as_json:
        _emit_json(rows)
        return
    table = Table("name", "state", "errors", "last success", "next poll", "last error")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["state"]),
            str(row["error_count"]),
            str(row["last_success_at"] or "-"),
            str(row["next_poll_at"] or "-"),
            (str(row["last_error"] or ""))[:60],
        )
    console.print(table)


@app.command("articles")
def articles(
    label: Annotated[
        str | None, typer.Option(help="Only this label: ukraine-security or other.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored articles, newest first."""
    from sqlmodel import col, select

    from .db import session_scope
    from .models import Article

    if label not in (None, "ukraine-security", "other"):
        fail("--label must be 'ukraine-security' or 'other'")
    with session_scope() as session:
        query = select(Article).order_by(col(Article.id).desc()).limit(limit)
        if label is not None:
            query = query.where(col(Article.is_ukraine_security).is_(label == "ukraine-security"))
        rows = [
            {
                "id": a.id,
                "title": a.title,
                "url": a.canonical_url,
                "published_at": a.published_at,
                "is_ukraine_security": a.is_ukraine_security,
                "security_score": a.security_score,
                "topics": a.topics,
                "story_id": a.story_id,
            }
            for a in session.exec(query).all()
        ]
    if as_json:
        _emit_json(rows)
        return
    _print_articles(rows)


def _print_articles(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "title", "label", "score", "topics")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["title"])[:80],
            "ukraine-security" if row["is_ukraine_security"] else "other",
            f"{row['security_score']:.2f}",
            ", ".join(row["topics"]),
        )
    console.print(table)


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
        fail(str(exc), code=1)
    if as_json:
        _emit_json(rows)
    else:
        console.print(f"demo database: {target / 'demo.db'}")
        _print_articles(
            [{**r, "id": r["id"]} for r in rows],
        )
    if not rows:
        fail("the pipeline stored no article", code=1)


def _celery_argv(extra: list[str] | None) -> list[str]:
    return list(extra or [])


@app.command(
    "worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def worker_cmd(ctx: typer.Context) -> None:
    """Run a Celery worker (extra arguments go to `celery worker`)."""
    _setup_logging()
    from .celery_app import app as celery_app

    celery_app.worker_main(["worker", "--loglevel", "INFO", *_celery_argv(ctx.args)])


@app.command("beat", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def beat_cmd(ctx: typer.Context) -> None:
    """Run the beat scheduler (exactly one per deployment)."""
    _setup_logging()
    from .celery_app import app as celery_app

    celery_app.start(["beat", "--loglevel", "INFO", *_celery_argv(ctx.args)])


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_cmd(ctx: typer.Context) -> None:
    """Run a worker with embedded beat: one process that does everything."""
    _setup_logging()
    from .celery_app import app as celery_app

    celery_app.worker_main(["worker", "--beat", "--loglevel", "INFO", *_celery_argv(ctx.args)])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
