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
    observed_interval,
    publish_interval,
    revalidation_due,
    server_minimum,
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


@given(
    st.floats(min_value=1, max_value=10**7, allow_nan=False),
    st.floats(min_value=1, max_value=10**7, allow_nan=False),
)
def test_adaptive_interval_is_monotonic_in_publishing_rate(a: float, b: float) -> None:
    """A feed that publishes more often is never polled less often (within the bounds)."""
    fast, slow = sorted((a, b))
    assert success_interval(BOUNDS, observed_publish_interval=fast) <= success_interval(
        BOUNDS, observed_publish_interval=slow
    )


def test_adaptive_interval_tracks_publishing() -> None:
    every_5_min = success_interval(BOUNDS, observed_publish_interval=300)
    hourly = success_interval(BOUNDS, observed_publish_interval=3600)
    daily = success_interval(BOUNDS, observed_publish_interval=86400)
    assert BOUNDS.min_seconds <= every_5_min < BOUNDS.base_seconds
    assert every_5_min < hourly < daily
    assert daily == BOUNDS.max_seconds


@given(
    st.floats(min_value=1, max_value=10**7, allow_nan=False) | st.none(),
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=1, max_value=10**6, allow_nan=False) | st.none(),
)
def test_never_sooner_than_ttl_max_age_or_retry_after(
    observed: float | None, ttl: int, max_age: float | None
) -> None:
    asked = server_minimum(
        cache_control=f"max-age={int(max_age)}" if max_age else None, ttl_seconds=float(ttl)
    )
    assert asked is not None
    interval = success_interval(
        BOUNDS, observed_publish_interval=observed, server_min_seconds=asked
    )
    assert interval >= min(float(ttl), BOUNDS.max_backoff_seconds)
    if max_age:
        assert interval >= min(float(int(max_age)), BOUNDS.max_backoff_seconds)


def test_server_minimum_takes_the_longest_request() -> None:
    assert server_minimum(cache_control="max-age=60", ttl_seconds=1800, retry_after=120) == 1800
    assert server_minimum(cache_control="s-maxage=9999") is None
    assert server_minimum() is None


def test_observed_interval_stretches_for_quiet_feeds() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    hourly_until_a_week_ago = [now - timedelta(days=7, hours=h) for h in range(10)]
    assert observed_interval(hourly_until_a_week_ago, now=now) == 7 * 86400
    fresh = [now - timedelta(hours=h) for h in range(1, 10)]
    assert observed_interval(fresh, now=now) == 3600
    future_only = [now + timedelta(days=1)]
    assert observed_interval(future_only, now=now) is None
    assert observed_interval([], now=now) is None


@given(st.integers(0, 100), st.integers(1, 50), st.floats(0, 10**6))
def test_revalidation_due(not_modified: int, every: int, age: float) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    due = revalidation_due(
        not_modified_since=not_modified,
        last_full_fetch_at=now - timedelta(seconds=age),
        now=now,
        every_polls=every,
        max_age_seconds=21600,
    )
    assert due == (not_modified + 1 >= every or age >= 21600)
    assert revalidation_due(
        not_modified_since=0, last_full_fetch_at=None, now=now, every_polls=every,
        max_age_seconds=1,
    )  # fmt: skip
