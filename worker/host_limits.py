"""The per-host limiter's parts shared by its two homes, and its in-process home.

A limiter answers, per host: may a request go now (a token bucket, so a queue of
requests drains at the configured rate), is the host paused (a 429/503 with
Retry-After, or its circuit breaker), and is this request the one probe after a
breaker's pause. :class:`~worker.redis_limits.RedisHostLimiter` keeps that state in
Redis for every worker; :class:`LocalHostLimiter` keeps it in one process (the
embedded demo mode without Redis). Both turn failures into the breaker's decision
the same way (:class:`BreakerReports`, over :mod:`worker.breaker`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from .breaker import BreakerPolicy, HostFailures, Trip, counts, failure_member, on_failure
from .errors import TransientError

log = structlog.get_logger(__name__)

KEY_PREFIX = "ingest:polite"
"""The Redis key prefix of everything politeness shares between workers."""
BREAKER_OFF = BreakerPolicy(failures=0, window=0.0, pause=0.0)
DEFAULT_PROBE_LEASE = 65.0
"""Seconds one half-open probe may take before another request may probe instead (the
default total timeout and a margin; settings give the real one)."""


@dataclass(frozen=True)
class HostRate:
    rate: float  # requests per second
    burst: int


@dataclass(frozen=True)
class HostPause:
    """A host paused for every worker, for how much longer, and why (``ingest stats``)."""

    host: str
    seconds_left: float
    reason: str


@dataclass(frozen=True)
class Slot:
    """The limiter's answer: ``flag`` is "this is the probe" when granted, "the host is
    paused" when not; ``reason`` says why it is paused."""

    granted: bool
    wait: float
    flag: bool
    reason: str = ""


class HostRates:
    """Per-host rates: an exact host or any parent domain in the table, else the default."""

    def __init__(self, default: HostRate, overrides: Mapping[str, float | HostRate]) -> None:
        self.default = default
        self.overrides = {
            k.lower().strip("."): v if isinstance(v, HostRate) else HostRate(v, default.burst)
            for k, v in overrides.items()
        }

    def for_host(self, host: str) -> HostRate:
        parts = host.lower().split(".")
        for i in range(len(parts)):
            found = self.overrides.get(".".join(parts[i:]))
            if found is not None:
                return found
        return self.default


def refused(host: str, slot: Slot) -> TransientError:
    """The error for a refused slot: the host is paused (and why), or its turn is further
    away than ``max_wait``. Both are throttles (:func:`~worker.errors.is_throttle`)."""
    if slot.flag:
        return TransientError(
            f"host {host} is paused for {slot.wait:.1f}s"
            + (f": {slot.reason}" if slot.reason else ""),
            error_class="host_paused",
            retry_after=slot.wait,
        )
    return TransientError(
        f"host {host} is throttled for {slot.wait:.1f}s",
        url=None,
        error_class="host_throttled",
        retry_after=slot.wait,
    )


class BreakerReports:
    """What both limiters share: how a failure or an answer is turned into the breaker's
    decision, around their own storage (``_count_failure``, ``_trip``, ``_close``)."""

    breaker: BreakerPolicy

    def failed(self, host: str, *, url: str, error_class: str, detail: str, probe: bool) -> None:
        """A fetch from ``host`` failed; pause the host if its breaker says so."""
        if not self.breaker.enabled or not counts(error_class):
            return
        member = failure_member(url=url, error_class=error_class, token=uuid.uuid4().hex)
        try:
            state = self._count_failure(host, member)
        except Exception as exc:  # a lost count is not worth failing the fetch over
            log.warning("host_breaker_unavailable", host=host, error=str(exc))
            return
        trip = on_failure(state, probe=probe, detail=detail, policy=self.breaker)
        if trip is not None:
            self._trip(host, trip)
            log.warning("host_breaker_open", host=host, seconds=trip.seconds, reason=trip.reason)

    def recovered(self, host: str) -> None:
        """The probe after a pause was answered: close the breaker, count afresh."""
        try:
            self._close(host)
        except Exception as exc:
            log.warning("host_breaker_unavailable", host=host, error=str(exc))
            return
        log.info("host_breaker_closed", host=host)

    def _count_failure(self, host: str, member: str) -> HostFailures:
        raise NotImplementedError

    def _trip(self, host: str, trip: Trip) -> None:
        raise NotImplementedError

    def _close(self, host: str) -> None:
        raise NotImplementedError


class LocalHostLimiter(BreakerReports):
    """The same token bucket, pauses and breaker, in process: for the embedded mode
    without Redis."""

    def __init__(
        self,
        rates: HostRates,
        *,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        breaker: BreakerPolicy = BREAKER_OFF,
        probe_lease: float = DEFAULT_PROBE_LEASE,
    ) -> None:
        self.rates = rates
        self.max_wait = max_wait
        self.breaker = breaker
        self.probe_lease = probe_lease
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._paused: dict[str, tuple[float, str]] = {}  # host: (until, reason)
        self._open: dict[str, tuple[float, str]] = {}  # host: (marker expiry, reason)
        self._probes: dict[str, float] = {}  # host: lease expiry
        self._failures: dict[str, dict[str, float]] = {}  # host: {member: when}

    def _reserve(self, host: str) -> Slot:
        rate = self.rates.for_host(host)
        with self._lock:
            now = self._clock()
            until, why = self._paused.get(host, (0.0, ""))
            opened = self._open.get(host)
            probe = False
            if opened is not None and opened[0] > now:
                if until > now:
                    return Slot(False, until - now, True, opened[1])
                lease = self._probes.get(host, 0.0)
                if lease > now:
                    reason = f"waiting for the probe after a pause; {opened[1]}"
                    return Slot(False, lease - now, True, reason)
                self._probes[host] = now + self.probe_lease
                probe = True
            tokens, ts = self._buckets.get(host, (float(rate.burst), now))
            start = max(now, until)
            if start > ts:
                tokens = min(float(rate.burst), tokens + (start - ts) * rate.rate)
                ts = start
            tokens -= 1
            wait = ts - now + (-tokens / rate.rate if tokens < 0 else 0.0)
            if wait > self.max_wait:
                if probe:
                    del self._probes[host]
                return Slot(False, wait, until > now, why if until > now else "")
            self._buckets[host] = (tokens, ts)
            return Slot(True, wait, probe)

    def reserve(self, host: str) -> tuple[bool, float]:
        slot = self._reserve(host)
        return slot.granted, slot.wait

    def acquire(self, host: str) -> bool:
        slot = self._reserve(host)
        if not slot.granted:
            raise refused(host, slot)
        if slot.wait > 0:
            self._sleep(slot.wait)
        return slot.flag

    def pause(self, host: str, seconds: float, *, reason: str = "asked to slow down") -> None:
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused.get(host, (0.0, ""))[0]:
                self._paused[host] = (until, reason)
        log.info("host_paused", host=host, seconds=seconds, reason=reason)

    def _count_failure(self, host: str, member: str) -> HostFailures:
        with self._lock:
            now = self._clock()
            failures = self._failures.setdefault(host, {})
            failures[member] = now
            for old in [m for m, when in failures.items() if when <= now - self.breaker.window]:
                del failures[old]
            opened = self._open.get(host)
            return HostFailures(
                recent=len(failures),
                paused=self._paused.get(host, (0.0, ""))[0] > now,
                open=opened is not None and opened[0] > now,
            )

    def _trip(self, host: str, trip: Trip) -> None:
        self.pause(host, trip.seconds, reason=trip.reason)
        with self._lock:
            expiry = self._clock() + trip.seconds + self.breaker.window
            self._open[host] = (expiry, trip.reason)
            self._probes.pop(host, None)
            self._failures.pop(host, None)

    def _close(self, host: str) -> None:
        with self._lock:
            for table in (self._open, self._probes, self._failures, self._paused):
                table.pop(host, None)

    def paused_hosts(self) -> list[HostPause]:
        """The hosts this process has paused (without Redis nothing else is known)."""
        with self._lock:
            now = self._clock()
            return sorted(
                (
                    HostPause(host, until - now, reason)
                    for host, (until, reason) in self._paused.items()
                    if until > now
                ),
                key=lambda p: p.host,
            )
