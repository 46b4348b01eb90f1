"""``/changes``: the change feed, every insert, update and delete of an article, story or
feed in one gap-safe order (docs/schema.md, "Change feed")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from .. import operations
from ..schemas import ChangePage, ResyncOut
from .params import KINDS, MAX_POSITION
from .responses import BAD_INPUT, Responses

reads = APIRouter()

RESYNC: Responses = {
    **BAD_INPUT,  # an unknown kind
    410: {
        "model": ResyncOut,
        "description": "`after` is not in the log (pruned by retention, or beyond its end): "
        "reload your copy, then follow from `head`.",
        "content": {
            "application/json": {
                "example": {
                    "detail": "changes after position 12 were pruned by retention ...: resync",
                    "resync": True,
                    "reason": "pruned",
                    "horizon": 4000,
                    "head": 5230,
                }
            }
        },
    },
}


@reads.get("/changes", response_model=ChangePage, responses=RESYNC)
def list_changes(
    after: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_POSITION,
            description="Position of the last change you applied (0: the start).",
        ),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=operations.MAX_CHANGES_PAGE)] = 100,
    kinds: Annotated[
        str | None,
        Query(
            max_length=100,
            json_schema_extra={"pattern": KINDS},
            description="Only these kinds, comma-separated: article, story, feed.",
        ),
    ] = None,
    include_body: bool = False,
) -> ChangePage:
    """Changes after position ``after``, oldest first, each with its row as it is now;
    pass ``next`` as ``after`` to continue."""
    return operations.read_changes(after=after, limit=limit, kinds=kinds, include_body=include_body)
