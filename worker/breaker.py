"""The per-host circuit breaker's decisions: plain code over plain data, no Redis.

Why a breaker: a host that drips its bytes holds a worker slot for the whole
total timeout (60 s) on every fetch, and each of its entries is tried six
times, so one such host cost about six slot-minutes per entry. After
``failures`` timeouts or 5xx answers from one host within ``window`` seconds,
the host is paused for every worker (the same shared pause a 429 sets,
:mod:`worker.politeness`) for ``pause`` seconds, and its entries are deferred
until then without a fetch. When the pause ends the breaker is *half-open*:
one request at a time (the probe) may go; its answer closes the breaker, and
its failure pauses the host again at once. So a dead host costs one timeout
per pause, not one per entry.

What counts: a timeout (the expensive failure: a slot held for the whole
timeout) counts each time; a 5xx counts once per URL within the window, so one
broken page retried five times does not pause a healthy host.
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTED_ERRORS = frozenset({"timeout", "http_5xx"})
"""The fetch errors that count towards opening the breaker (``IngestError.error_class``)."""


@dataclass(frozen=True)
class BreakerPolicy:
    """``failures`` within ``window`` seconds pause a host for ``pause`` seconds; 0 is off."""

    failures: int
    window: float
    pause: float

    @property
    def enabled(self) -> bool:
        return self.failures > 0 and self.pause > 0


@dataclass(frozen=True)
class HostFailures:
    """What the shared state says about a host, just after one more failure was added."""

    recent: int
    """Failures counted within the window, this one included."""
    paused: bool
    """The host is paused now (by the breaker or a 429): the breaker needs no new decision."""
    open: bool
    """The breaker tripped and no answer has closed it since (half-open once the pause ends)."""


@dataclass(frozen=True)
class Trip:
    """Pause the host for ``seconds``; ``reason`` is what operators see."""

    seconds: float
    reason: str


def counts(error_class: str) -> bool:
    """Whether a failed fetch of this class counts towards opening the breaker."""
    return error_class in COUNTED_ERRORS


def failure_member(*, url: str, error_class: str, token: str) -> str:
    """The failure's member in the host's failure set: a 5xx is keyed by its URL (a URL's
    repeats count once), a timeout by a unique ``token`` (each one counts)."""
    if error_class == "http_5xx":
        return f"5xx {url}"
    return f"{error_class} {token}"


def on_failure(
    state: HostFailures, *, probe: bool, detail: str, policy: BreakerPolicy
) -> Trip | None:
    """Whether this failure pauses the host, and why.

    ``probe``: the failed request was the one half-open probe after a pause.
    ``detail``: the failure itself (``timeout: ReadTimeout url=...``), for the reason.
    """
    if not policy.enabled or state.paused:
        return None  # a request that started before the pause, ending now: nothing new
    if probe or state.open:
        return Trip(policy.pause, f"circuit breaker: still failing after a pause ({detail})")
    if state.recent >= policy.failures:
        return Trip(
            policy.pause,
            f"circuit breaker: {state.recent} timeouts or 5xx within "
            f"{policy.window:g}s (last: {detail})",
        )
    return None
