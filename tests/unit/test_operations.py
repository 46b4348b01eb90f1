"""The operations' pure parts: the CLI's time syntax and what a refusal says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.operations import BadInputError, NotFoundError, parse_when


def test_parse_when() -> None:
    assert parse_when("2026-05-01") == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_when("2026-05-01T12:00") == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert parse_when("2026-05-01T12:00+02:00").utcoffset() == timedelta(hours=2)
    six_hours_ago = datetime.now(UTC) - timedelta(hours=6)
    assert abs(parse_when("6h") - six_hours_ago) < timedelta(seconds=5)
    with pytest.raises(BadInputError, match="bad date 'soon'"):
        parse_when("soon")


def test_not_found_names_what_and_which() -> None:
    refusal = NotFoundError("feed", "nope")
    assert (str(refusal), refusal.kind, refusal.key) == ("unknown feed 'nope'", "feed", "nope")
