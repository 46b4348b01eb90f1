"""``ingest``: the operator's command line. No logic of its own: each command parses
its arguments, calls :mod:`worker.operations` (the API calls the same ones) and
prints the result (``--json`` for scripts). Bad input exits non-zero with a
one-line error, never a traceback; the exit codes are in :mod:`worker.cli.common`.

This module is the table of contents: which command runs which function.
"""

from __future__ import annotations

import sys

import typer

from . import changes, crawl, db, feeds, processes, read, subscriptions
from .common import EXIT_BAD_INPUT, Commands, err_console

app = typer.Typer(
    cls=Commands, help="Ukraine-security news ingestion worker.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Database schema, backups and restores, and moving to another database.",
    no_args_is_help=True,
)
feeds_app = typer.Typer(help="Manage the feeds that are polled.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(feeds_app, name="feeds")
subscriptions_app = typer.Typer(
    help="Webhook subscribers of the change feed.", no_args_is_help=True
)
app.add_typer(subscriptions_app, name="subscriptions")

db_app.command("upgrade")(db.db_upgrade)
db_app.command("backup")(db.db_backup)
db_app.command("restore")(db.db_restore)
db_app.command("copy")(db.db_copy)

feeds_app.command("import")(feeds.feeds_import)
feeds_app.command("add")(feeds.feeds_add)
feeds_app.command("list")(feeds.feeds_list)
feeds_app.command("enable")(feeds.feeds_enable)
feeds_app.command("disable")(feeds.feeds_disable)
feeds_app.command("remove")(feeds.feeds_remove)

subscriptions_app.command("add")(subscriptions.subscriptions_add)
subscriptions_app.command("list")(subscriptions.subscriptions_list)
subscriptions_app.command("pause")(subscriptions.subscriptions_pause)
subscriptions_app.command("resume")(subscriptions.subscriptions_resume)
subscriptions_app.command("remove")(subscriptions.subscriptions_remove)

app.command("recrawl")(crawl.recrawl)
app.command("crawl-requests")(crawl.crawl_requests)
app.command("reclassify")(crawl.reclassify)

app.command("articles")(read.articles)
app.command("stories")(read.stories)
app.command("stats")(read.stats)
app.command("health")(read.health)
app.command("changes")(changes.changes)

app.command("api")(processes.api_cmd)
app.command("demo")(processes.demo)
app.command("worker", context_settings=processes.PASSTHROUGH)(processes.worker_cmd)
app.command("beat", context_settings=processes.PASSTHROUGH)(processes.beat_cmd)
app.command("run", context_settings=processes.PASSTHROUGH)(processes.run_cmd)


def main() -> None:
    """Entry point: refuse bad ``INGEST_*`` settings with one line each, not a traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from rich.markup import escape

    from ..settings import get_settings

    try:
        get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]).upper() if error["loc"] else "*"
            err_console.print(f"[bold red]error:[/] INGEST_{field}: {error['msg']}")
        sys.exit(EXIT_BAD_INPUT)
    except SettingsError as exc:  # an unreadable INGEST_*_FILE, a value that is not JSON
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_BAD_INPUT)
    app()
