"""Next-poll maths: bounds, server minimums, backoff caps, jitter direction."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from worker.schedule import (
    PollBounds,
    cache_max_age,
    failure_interval,
    publish_interval,
    success_interval,
    with_jitter,
)

BOUNDS = PollBounds(base_seconds=900, min_seconds=300, max_seconds=21600, max_backoff_seconds=86400)


def test_publish_interval_is_median_gap() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    dates = [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2), t0 + timedelta(hours=10)]
    assert publish_interval(dates) == 3600
    assert publish_interval([t0]) is None


def test_cache_max_age() -> None:
    assert cache_max_age("public, max-age=600") == 600
    assert cache_max_age("no-cache") is None
    assert cache_max_age(None) is None


@given(
    st.floats(min_value=1, max_value=10**7, allow_nan=False) | st.none(),
    st.floats(min_value=0, max_value=10**7, allow_nan=False) | st.none(),
)
def test_success_interval_respects_bounds_and_server(
    observed: float | None, server_min: float | None
) -> None:
    interval = success_interval(
        BOUNDS, observed_publish_interval=observed, server_min_seconds=server_min
    )
    assert interval >= BOUNDS.min_seconds
    assert interval <= max(BOUNDS.max_seconds, BOUNDS.max_backoff_seconds)
    if server_min is not None:
        assert interval >= min(server_min, BOUNDS.max_backoff_seconds)


@given(st.integers(min_value=1, max_value=10_000), st.floats(0, 10**6) | st.none())
def test_failure_backoff_is_capped_and_monotonic(errors: int, retry_after: float | None) -> None:
    interval = failure_interval(BOUNDS, consecutive_errors=errors, retry_after=retry_after)
    assert BOUNDS.min_seconds <= interval <= BOUNDS.max_backoff_seconds
    nxt = failure_interval(BOUNDS, consecutive_errors=errors + 1, retry_after=retry_after)
    assert nxt >= interval


@given(st.floats(min_value=0, max_value=10**6), st.integers(0, 2**32))
def test_jitter_only_adds_time(seconds: float, seed: int) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    when = with_jitter(now, seconds, BOUNDS, random.Random(seed))
    delta = (when - now).total_seconds()
    assert seconds - 1e-6 <= delta <= seconds * (1 + BOUNDS.jitter_fraction) + 1e-6
