"""Next-poll maths (pure): when to poll a feed again, and how to back off.

A feed is polled about as often as it publishes, within operator bounds, never
sooner than the server asked (TTL, Cache-Control max-age, Retry-After), and with
jitter so thousands of feeds added at once do not poll in lockstep.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

_MAX_AGE = re.compile(r"(?<![-\w])max-age\s*=\s*\"?(\d+)", re.I)


@dataclass(frozen=True)
class PollBounds:
    base_seconds: float
    min_seconds: float
    max_seconds: float
    max_backoff_seconds: float
    jitter_fraction: float = 0.1


def bounds_for(settings: Settings, poll_interval_seconds: int | None) -> PollBounds:
    """The operator's bounds for a feed: its own interval if set, else the default,
    with the global minimum and maximum widened to include it."""
    base = float(poll_interval_seconds or settings.poll_interval_seconds)
    return PollBounds(
        base_seconds=base,
        min_seconds=float(min(settings.min_poll_interval_seconds, base)),
        max_seconds=float(max(settings.max_poll_interval_seconds, base)),
        max_backoff_seconds=float(settings.max_backoff_seconds),
        jitter_fraction=settings.poll_jitter_fraction,
    )


def publish_interval(published: Sequence[datetime]) -> float | None:
    """Median gap between consecutive item dates, in seconds (None if < 2 dates)."""
    stamps = sorted({p.timestamp() for p in published})
    if len(stamps) < 2:
        return None
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps) if b > a)
    if not gaps:
        return None
    middle = len(gaps) // 2
    if len(gaps) % 2:
        return gaps[middle]
    return (gaps[middle - 1] + gaps[middle]) / 2


def observed_interval(published: Sequence[datetime], *, now: datetime) -> float | None:
    """How often the feed really publishes, in seconds (None when unknown).

    The median gap between item dates, stretched to the time since the newest
    item when the feed has gone quiet for longer than that: a feed whose
    items came hourly last month but nothing since is not an hourly feed now.
    Dates in the future (publishers' clock or time-zone mistakes) are ignored.
    """
    past = [p for p in published if p <= now]
    gap = publish_interval(past)
    if not past:
        return gap
    quiet = (now - max(past)).total_seconds()
    candidates = [v for v in (gap, quiet) if v is not None and v > 0]
    return max(candidates) if candidates else None


def server_minimum(
    *,
    cache_control: str | None = None,
    ttl_seconds: float | None = None,
    retry_after: float | None = None,
) -> float | None:
    """The longest wait the server asked for: Cache-Control max-age, RSS <ttl>, Retry-After."""
    asked = [v for v in (cache_max_age(cache_control), ttl_seconds, retry_after) if v]
    return max(asked) if asked else None


def cache_max_age(cache_control: str | None) -> float | None:
    """``max-age`` from Cache-Control (not ``s-maxage``: that is for shared caches)."""
    if not cache_control:
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def success_interval(
    bounds: PollBounds,
    *,
    observed_publish_interval: float | None,
    server_min_seconds: float | None = None,
) -> float:
    """Seconds until the next poll after a successful one, before jitter.

    Halfway between the base interval and half the publishing gap (so a feed
    that publishes hourly is checked about every half hour), clamped to the
    operator's bounds, then raised to whatever the server asked for.
    """
    interval = bounds.base_seconds
    if observed_publish_interval is not None and observed_publish_interval > 0:
        interval = (bounds.base_seconds + observed_publish_interval / 2) / 2
    interval = min(max(interval, bounds.min_seconds), bounds.max_seconds)
    if server_min_seconds is not None:
        interval = max(interval, min(server_min_seconds, bounds.max_backoff_seconds))
    return interval


def failure_interval(
    bounds: PollBounds, *, consecutive_errors: int, retry_after: float | None = None
) -> float:
    """Exponential backoff after ``consecutive_errors`` failures, capped."""
    exponent = max(consecutive_errors - 1, 0)
    growth = float(2 ** min(exponent, 32))
    interval = min(bounds.base_seconds * growth, bounds.max_backoff_seconds)
    interval = max(interval, bounds.min_seconds)
    if retry_after is not None:
        interval = max(interval, min(retry_after, bounds.max_backoff_seconds))
    return interval


def with_jitter(
    now: datetime, seconds: float, bounds: PollBounds, rng: random.Random | None = None
) -> datetime:
    """``now + seconds`` plus up to ``jitter_fraction`` of extra random delay.

    Jitter only ever adds time, so a server's minimum is never undercut.
    """
    rng = rng or random.Random()
    extra = seconds * bounds.jitter_fraction * rng.random()
    return now + timedelta(seconds=seconds + extra)


def revalidation_due(
    *,
    not_modified_since: int,
    last_full_fetch_at: datetime | None,
    now: datetime,
    every_polls: int,
    max_age_seconds: float,
) -> bool:
    """Whether a 304 must be double-checked with an unconditional GET.

    Every ``every_polls``-th poll, or when the last full body is older than
    ``max_age_seconds``, a 304 is not taken on trust: the body is fetched and
    its hash compared, which catches servers whose validators never change.
    """
    if last_full_fetch_at is None:
        return True
    if not_modified_since + 1 >= every_polls:
        return True
    return (now - last_full_fetch_at).total_seconds() >= max_age_seconds
