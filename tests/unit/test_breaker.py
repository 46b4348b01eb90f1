"""The per-host circuit breaker, pure: what counts, when it trips and why, and the
in-process limiter's open → half-open (one probe) → closed cycle on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.breaker import BreakerPolicy, HostFailures, counts, failure_member, on_failure
from worker.errors import TransientError, is_throttle
from worker.politeness import HostRate, HostRates, LocalHostLimiter

POLICY = BreakerPolicy(failures=3, window=60.0, pause=120.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_timeouts_and_5xx_count_nothing_else() -> None:
    """Only the failures that say the host is in trouble: not 4xx, a refused connection
    (cheap), or our own limiter's refusals."""
    assert counts("timeout")
    assert counts("http_5xx")
    for other in ("network", "http_4xx", "rate_limited", "host_paused", "host_throttled"):
        assert not counts(other)


def test_a_urls_5xx_count_once_each_timeout_counts() -> None:
    """One broken page retried five times is one failure; five timeouts are five."""
    five = {
        failure_member(url="http://h/broken", error_class="http_5xx", token=str(n))
        for n in range(5)
    }
    assert len(five) == 1
    slow = {
        failure_member(url="http://h/slow", error_class="timeout", token=str(n)) for n in range(5)
    }
    assert len(slow) == 5


def test_trips_at_the_threshold_with_the_reason() -> None:
    calm = HostFailures(recent=2, paused=False, open=False)
    assert on_failure(calm, probe=False, detail="timeout", policy=POLICY) is None
    trip = on_failure(
        HostFailures(recent=3, paused=False, open=False),
        probe=False,
        detail="timeout: ReadTimeout url=http://h/p",
        policy=POLICY,
    )
    assert trip is not None
    assert trip.seconds == 120.0
    assert "3 timeouts or 5xx within 60s" in trip.reason
    assert "ReadTimeout url=http://h/p" in trip.reason


@given(
    recent=st.integers(0, 10),
    paused=st.booleans(),
    opened=st.booleans(),
    probe=st.booleans(),
    failures=st.integers(0, 5),
)
def test_trips_exactly_when_it_should(
    recent: int, paused: bool, opened: bool, probe: bool, failures: int
) -> None:
    """Never while the host is already paused or the breaker is off; at once for a failed
    probe (or any failure while it is still open); else at ``failures`` in the window."""
    policy = BreakerPolicy(failures=failures, window=60.0, pause=120.0)
    state = HostFailures(recent=recent, paused=paused, open=opened)
    trip = on_failure(state, probe=probe, detail="x", policy=policy)
    expected = failures > 0 and not paused and (probe or opened or recent >= failures)
    assert (trip is not None) == expected


def _limiter(clock: FakeClock, *, max_wait: float = 30.0) -> LocalHostLimiter:
    return LocalHostLimiter(
        HostRates(HostRate(100.0, 10), {}),
        max_wait=max_wait,
        clock=clock,
        sleep=clock.sleep,
        breaker=POLICY,
        probe_lease=65.0,
    )


def _fail(limiter: LocalHostLimiter, n: int, *, probe: bool = False) -> None:
    limiter.failed(
        "h", url=f"http://h/{n}", error_class="timeout", detail=f"timeout {n}", probe=probe
    )


def _refusal(limiter: LocalHostLimiter) -> TransientError:
    with pytest.raises(TransientError) as info:
        limiter.acquire("h")
    assert is_throttle(info.value)
    return info.value


def test_open_half_open_closed() -> None:
    """K failures pause the host; after the pause one probe goes at a time; a failed probe
    pauses it again at once; an answered probe closes the breaker."""
    clock = FakeClock()
    limiter = _limiter(clock)
    _fail(limiter, 1)
    _fail(limiter, 2)
    assert limiter.acquire("h") is False  # two failures: still closed, not a probe
    _fail(limiter, 3)
    refusal = _refusal(limiter)
    assert refusal.error_class == "host_paused"
    assert refusal.retry_after == pytest.approx(120.0)
    assert "circuit breaker: 3 timeouts or 5xx within 60s" in str(refusal)
    (paused,) = limiter.paused_hosts()
    assert paused.host == "h"
    assert "circuit breaker" in paused.reason
    assert limiter.acquire("other") is False  # other hosts are not affected

    clock.now += 121  # the pause is over: half-open
    assert limiter.acquire("h") is True  # the probe
    waiting = _refusal(limiter)  # everybody else waits for the probe
    assert "waiting for the probe" in str(waiting)
    _fail(limiter, 4, probe=True)  # the probe failed: paused again, at once
    assert "still failing after a pause" in str(_refusal(limiter))

    clock.now += 121
    assert limiter.acquire("h") is True
    limiter.recovered("h")  # the probe was answered
    assert limiter.acquire("h") is False
    assert limiter.acquire("h") is False
    assert limiter.paused_hosts() == []
    _fail(limiter, 5)
    _fail(limiter, 6)
    assert limiter.acquire("h") is False  # counted afresh: two is not three


def test_failures_outside_the_window_and_repeated_5xx_do_not_trip() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    _fail(limiter, 1)
    _fail(limiter, 2)
    clock.now += 61
    _fail(limiter, 3)  # the first two have left the window
    assert limiter.acquire("h") is False
    for _ in range(5):  # one broken page, retried
        limiter.failed(
            "h", url="http://h/broken", error_class="http_5xx", detail="HTTP 500", probe=False
        )
    assert limiter.acquire("h") is False


def test_nobody_sleeps_into_an_open_breakers_half_open_time() -> None:
    """A 429 pause shorter than max_wait is waited out in the bucket; a breaker's pause
    is refused outright, so that after it only the probe goes."""
    clock = FakeClock()
    limiter = LocalHostLimiter(
        HostRates(HostRate(100.0, 10), {}),
        max_wait=30.0,
        clock=clock,
        sleep=clock.sleep,
        breaker=BreakerPolicy(failures=1, window=60.0, pause=10.0),
    )
    limiter.pause("h", 10, reason="HTTP 429 (Retry-After 10s)")
    assert limiter.acquire("h") is False
    assert clock.slept == [pytest.approx(10.0)]
    _fail(limiter, 1)
    assert _refusal(limiter).retry_after == pytest.approx(10.0)


def test_off_when_failures_is_zero() -> None:
    clock = FakeClock()
    limiter = LocalHostLimiter(HostRates(HostRate(100.0, 10), {}), clock=clock, sleep=clock.sleep)
    for n in range(10):
        _fail(limiter, n)
    assert limiter.acquire("h") is False
