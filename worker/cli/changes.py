"""``ingest changes``: read or tail the change feed (docs/schema.md, "Change feed").

``--follow --json`` prints one change per line (JSON Lines), flushed as it goes, and
stops cleanly on Ctrl-C or SIGTERM, saying on stderr which ``--after`` resumes exactly
where it stopped: the position of the last line it printed.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import JsonOpt, console, emit_json, setup_logging

if TYPE_CHECKING:
    from ..schemas import ChangeOut, ChangePage


def changes(
    after: Annotated[
        int, typer.Option(min=0, help="Position of the last change already seen (0: the start).")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Changes per page.")] = 100,
    kinds: Annotated[
        str | None,
        typer.Option(help="Only these kinds, comma-separated: article, story, feed."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling and print changes as they come.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="With --follow: seconds between polls when idle.")
    ] = 2.0,
    include_body: Annotated[
        bool, typer.Option("--include-body", help="Include article bodies in --json rows.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Changes of articles, stories and feeds after a position, oldest first."""
    from .. import operations

    setup_logging()  # to stderr: stdout carries only the changes

    def page(position: int) -> ChangePage:
        return operations.read_changes(
            after=position, limit=limit, kinds=kinds, include_body=include_body
        )

    if not follow:
        result = page(after)
        if as_json:
            emit_json(result.model_dump(mode="json"))
            return
        table = Table("position", "kind", "id", "op", "changed at", "title / name")
        for change in result.changes:
            table.add_row(
                str(change.position), change.kind, str(change.id), change.op,
                str(change.changed_at)[:19], _label(change),
            )  # fmt: skip
        console.print(table)
        console.print(f"next: --after {result.next} (log head {result.head})")
        return
    _follow(page, after=after, interval=interval, as_json=as_json)


def _follow(
    page: Callable[[int], ChangePage], *, after: int, interval: float, as_json: bool
) -> None:
    """Poll from ``after`` until a signal; ``after`` moves with every line printed."""
    from ..operations import ResyncRequiredError

    stop = threading.Event()

    def stop_on(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        # A second Ctrl-C or SIGTERM ends at once, even inside a slow database call.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    previous = {s: signal.signal(s, stop_on) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            result = page(after)
            for change in result.changes:
                if stop.is_set():
                    break
                _print_line(change, as_json=as_json)
                after = change.position
            else:
                after = result.next
            if result.next >= result.head:  # caught up: wait for more
                stop.wait(interval)
    except BrokenPipeError:  # whoever read our output went away
        _say_where(after, "output closed")
        return
    except ResyncRequiredError:
        raise  # no position to resume from: the error says what to do
    except BaseException:
        _say_where(after, "stopped")
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _say_where(after, "stopped")


def _say_where(after: int, what: str) -> None:
    """One plain line on stderr (not rich: it must not wrap), to copy and paste."""
    sys.stderr.write(
        f"{what} at position {after}; resume with: ingest changes --follow --after {after}\n"
    )
    sys.stderr.flush()


def _print_line(change: ChangeOut, *, as_json: bool) -> None:
    if as_json:
        line = json.dumps(change.model_dump(mode="json"), ensure_ascii=False)
    else:
        line = (
            f"{change.position}\t{change.kind}\t{change.id}\t{change.op}\t"
            f"{str(change.changed_at)[:19]}\t{_label(change)}"
        )
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _label(change: ChangeOut) -> str:
    row = change.row
    if row is None:
        return "(gone)"
    title = getattr(row, "title", None) if change.kind != "feed" else getattr(row, "name", "")
    return str(title or "")[:70]
