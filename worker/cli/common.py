"""What every command shares: output, options, exit codes and progress bars.

Exit codes: 0 ok; 1 the work failed or timed out (or the database is away); 2 bad
input (unknown feed, bad date, bad URL — the code typer uses for usage errors); 3
the broker is unreachable, so nothing was enqueued; 4 a change-feed position is no
longer in the log, so the reader must resync. The operations' refusals are
turned into these once, in :class:`Commands`, not by each command.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

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
from typer.core import TyperGroup

if TYPE_CHECKING:
    from pydantic import BaseModel

    Model = TypeVar("Model", bound=BaseModel)

console = Console()
err_console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKER = 3
EXIT_RESYNC = 4

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


class Commands(TyperGroup):
    """The command group that turns the operations' refusals into exit codes."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context (typer vendors its own click)
        try:
            return super().invoke(ctx)
        except Exception as exc:
            exit_for(exc)
            raise


def exit_for(exc: Exception) -> None:
    """Exit with the code and message for a refusal; return for any other exception.

    The classes are imported here, once something failed, not before every command:
    a command decides what it loads first (``ingest worker`` must set up
    prometheus_client's multiprocess mode before anything imports it).
    """
    import sqlalchemy.exc

    from ..broker import BrokerUnavailableError
    from ..operations import BadInputError, NotFoundError, ResyncRequiredError

    if isinstance(exc, ResyncRequiredError):
        fail(str(exc), code=EXIT_RESYNC)
    if isinstance(exc, NotFoundError):
        fail(f"{exc} (see `ingest feeds list`)" if exc.kind == "feed" else str(exc))
    if isinstance(exc, BadInputError):
        fail(str(exc))
    if isinstance(exc, BrokerUnavailableError):
        fail(f"{exc} — is Redis running? (INGEST_BROKER_URL)", code=EXIT_BROKER)
    if isinstance(exc, sqlalchemy.exc.OperationalError):
        fail(f"database unavailable: {exc.orig or exc}", code=EXIT_FAILED)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=2) + "\n")


def parsed(model: type[Model], values: dict[str, Any], options: dict[str, str]) -> Model:
    """``model(**values)``, or exit 2 saying which value is wrong and why; ``options``
    names the command-line option a field came from."""
    from pydantic import ValidationError

    from ..schemas import describe

    try:
        return model(**values)
    except ValidationError as exc:
        fail(describe(exc, options))


def when(value: str | None, option: str = "--since") -> datetime | None:
    """An option's time (see :func:`worker.operations.parse_when`), or None when not given."""
    from ..operations import BadInputError, parse_when

    if value is None:
        return None
    try:
        return parse_when(value)
    except BadInputError as exc:
        fail(f"{option}: {exc}")


def check_label(label: str | None) -> None:
    from ..schemas import LABELS

    if label not in (None, *LABELS):
        fail("--label must be 'ukraine-security' or 'other'")


def who(requested_by: str | None) -> str:
    if requested_by:
        return requested_by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def setup_logging() -> None:
    from ..logging import configure_logging
    from ..settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)


def follow(
    description: str,
    poll: Callable[[], tuple[int, int, bool]],
    *,
    timeout: float,
    interval: float = 0.5,
) -> bool:
    """Show a progress bar fed by ``poll() -> (completed, total, finished)``."""
    deadline = time.monotonic() + timeout
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=None)
        while True:
            completed, total, finished = poll()
            progress.update(task, completed=completed, total=total or None)
            if finished:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
