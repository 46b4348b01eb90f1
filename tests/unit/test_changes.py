"""The change log's pure parts: folding pending changes per row, the kinds a reader
asks for, and what a reader that must resync is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.changefeed import parse_kinds
from worker.store.changes import ResyncRequiredError, coalesce

T = datetime(2026, 12, 1, tzinfo=UTC)


def at(n: int) -> datetime:
    return T + timedelta(seconds=n)


def test_one_change_per_row_at_its_first_place_with_its_last_time() -> None:
    kept, dropped = coalesce(
        [
            (1, "story", 7, "insert", at(1)),
            (2, "article", 3, "insert", at(2)),
            (3, "story", 7, "update", at(3)),
            (4, "feed", 1, "update", at(4)),
        ]
    )
    assert kept == [(1, "insert", at(3)), (2, "insert", at(2)), (4, "update", at(4))]
    assert dropped == [3]


@pytest.mark.parametrize(
    ("ops", "folded"),
    [
        (["update", "update"], "update"),
        (["insert", "update", "update"], "insert"),
        (["update", "delete"], "delete"),
        (["insert", "update", "delete"], "delete"),
        (["delete", "insert"], "insert"),  # SQLite may give a deleted top id out again
        (["update", "delete", "insert", "update"], "insert"),
    ],
)
def test_the_folded_op(ops: list[str], folded: str) -> None:
    kept, dropped = coalesce([(n, "feed", 1, op, at(n)) for n, op in enumerate(ops)])
    assert kept == [(0, folded, at(len(ops) - 1))]
    assert dropped == list(range(1, len(ops)))


def test_same_id_of_another_kind_is_another_row() -> None:
    kept, dropped = coalesce([(1, "feed", 1, "update", T), (2, "story", 1, "update", T)])
    assert [k[0] for k in kept] == [1, 2]
    assert dropped == []


def test_parse_kinds() -> None:
    assert parse_kinds(None) is None
    assert parse_kinds("") is None
    assert parse_kinds("article, story,article") == ("article", "story")
    assert parse_kinds(["feed", "story,feed"]) == ("feed", "story")
    with pytest.raises(ValueError, match="unknown kind 'stories'"):
        parse_kinds("article,stories")


def test_resync_message_says_why_and_where_to_start() -> None:
    pruned = ResyncRequiredError(after=3, horizon=10, head=42)
    assert pruned.reason == "pruned"
    assert str(pruned).startswith("changes after position 3 were pruned by retention")
    assert str(pruned).endswith("then follow from position 42")
    ahead = ResyncRequiredError(after=50, horizon=10, head=42)
    assert ahead.reason == "ahead"
    assert "position 50 is beyond the end of the log (42)" in str(ahead)
