"""``ingest subscriptions ...``: webhook subscribers of the change feed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import EXIT_FAILED, JsonOpt, console, emit_json, fail, parsed

if TYPE_CHECKING:
    from ..schemas import SubscriptionOut

ROW = {
    "id",
    "url",
    "label",
    "topics",
    "kinds",
    "state",
    "position",
    "lag",
    "consecutive_failures",
    "last_error",
    "last_http_status",
    "last_success_at",
    "next_attempt_at",
    "paused_at",
}
"""What ``--json`` prints of a subscription."""


def row(subscription: SubscriptionOut) -> dict[str, Any]:
    return subscription.model_dump(mode="json", include=ROW)


def subscriptions_add(
    url: Annotated[str, typer.Argument(help="Where to POST events (http or https).")],
    label: Annotated[
        str | None, typer.Option(help="Only rows labelled so: ukraine-security or other.")
    ] = None,
    topics: Annotated[
        list[str] | None, typer.Option("--topic", help="Only rows with this topic (repeatable).")
    ] = None,
    kinds: Annotated[
        str, typer.Option(help="What changes: article, story, feed (comma-separated).")
    ] = "article",
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a URL to new changes; prints the signing secret, this one time."""
    from .. import operations
    from ..schemas import SubscriptionIn

    values = {
        "url": url,
        "label": label,
        "topics": topics or [],
        "kinds": [k.strip() for k in kinds.split(",") if k.strip()],
    }
    spec = parsed(SubscriptionIn, values, {"label": "--label", "topics": "--topic"})
    created = operations.add_subscription(spec)
    if as_json:
        emit_json({**row(created), "secret": created.secret})
        return
    console.print(f"added subscription {created.id} -> {created.url}")
    console.print(f"secret (shown only now): {created.secret}", highlight=False, soft_wrap=True)


def subscriptions_list(as_json: JsonOpt = False) -> None:
    """Show every subscription with its state, failures, lag and last error."""
    from .. import operations

    found = operations.list_subscriptions()
    if as_json:
        emit_json([row(s) for s in found])
        return
    table = Table("id", "url", "filter", "state", "failures", "lag", "last success", "last error")
    for s in found:
        what = ",".join(s.kinds) + (f" {s.label}" if s.label else "")
        what += f" {'|'.join(s.topics)}" if s.topics else ""
        table.add_row(
            str(s.id), s.url, what, s.state, str(s.consecutive_failures), str(s.lag),
            str(s.last_success_at or "-")[:19], (s.last_error or "")[:60],
        )  # fmt: skip
    console.print(table)


def subscriptions_pause(subscription_id: int, as_json: JsonOpt = False) -> None:
    """Stop delivering to a subscriber; its position is kept, so nothing is lost."""
    from .. import operations

    _show(operations.pause_subscription(subscription_id), "paused", as_json)


def subscriptions_resume(subscription_id: int, as_json: JsonOpt = False) -> None:
    """Deliver again, at once, from where delivery stopped."""
    from .. import operations

    _show(operations.resume_subscription(subscription_id), "resumed", as_json)


def _show(subscription: SubscriptionOut, done: str, as_json: bool) -> None:
    if as_json:
        emit_json(row(subscription))
    else:
        console.print(f"{done} subscription {subscription.id} ({subscription.lag} changes to go)")


def subscriptions_remove(
    subscription_id: int,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a subscription; nothing more is sent to it."""
    from .. import operations

    found = operations.get_subscription(subscription_id)
    if not yes and not typer.confirm(f"remove subscription {subscription_id} ({found.url})?"):
        fail("not removed", code=EXIT_FAILED)
    operations.remove_subscription(subscription_id)
    console.print(f"removed subscription {subscription_id}")
