"""Retry backoff, pure: never below the base delay (so never "Retry in 0s"), never above
the cap, doubling per retry, and a longer Retry-After wins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.backoff import (
    RETRY_AFTER_MAX_SECONDS,
    RETRY_AFTER_SPREAD_SECONDS,
    defer_delay,
    retry_delay,
)

bases = st.floats(min_value=0.01, max_value=60, allow_nan=False)
caps = st.floats(min_value=0.01, max_value=3600, allow_nan=False)
draws = st.floats(min_value=0, max_value=1, exclude_max=True)
retries = st.integers(min_value=0, max_value=10_000)


@given(retries=retries, base=bases, cap=caps, draw=draws)
def test_never_below_the_floor_never_above_the_cap(
    retries: int, base: float, cap: float, draw: float
) -> None:
    """Whatever the jitter draws: at least the base delay (the cap, if that is lower), at
    least half this retry's exponential step, and at most the cap."""
    delay = retry_delay(retries, base=base, cap=cap, rand=lambda: draw)
    step = min(cap, base * 2.0 ** min(retries, 62))
    assert delay >= min(base, cap)
    assert delay >= step / 2
    assert delay <= cap


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_first_retries_wait_their_base_delay(draw: float) -> None:
    """The jitter that used to round to zero: retry 1 waits exactly the base, retry 2
    between one and two bases, retry 3 between two and four."""
    assert retry_delay(0, base=1.0, cap=600, rand=lambda: draw) == 1.0
    assert 1.0 <= retry_delay(1, base=1.0, cap=600, rand=lambda: draw) <= 2.0
    assert 2.0 <= retry_delay(2, base=1.0, cap=600, rand=lambda: draw) <= 4.0
    assert retry_delay(30, base=1.0, cap=600, rand=lambda: draw) >= 300.0


@given(retries=st.integers(0, 20), retry_after=st.floats(0.001, 10**6), draw=draws)
def test_a_longer_retry_after_wins(retries: int, retry_after: float, draw: float) -> None:
    """The server's Retry-After is honoured when it is longer than the backoff (up to an
    hour), spread by a few seconds; a shorter one does not shorten the backoff."""
    backoff = retry_delay(retries, base=1.0, cap=600, rand=lambda: draw)
    delay = retry_delay(retries, base=1.0, cap=600, retry_after=retry_after, rand=lambda: draw)
    assert delay >= backoff
    assert delay >= min(retry_after, RETRY_AFTER_MAX_SECONDS)
    assert delay <= max(backoff, RETRY_AFTER_MAX_SECONDS + RETRY_AFTER_SPREAD_SECONDS)


def test_a_deferred_entry_comes_back_after_the_pause() -> None:
    """Deferred past the pause, by at most the spread; a negative wait is no wait."""
    assert defer_delay(30.0, rand=lambda: 0.0) == 30.0
    assert 30.0 <= defer_delay(30.0) <= 30.0 + RETRY_AFTER_SPREAD_SECONDS
    assert defer_delay(-1.0, rand=lambda: 0.0) == 0.0
