"""How long a task waits before its next try: plain maths, no Celery.

Why not Celery's own ``retry_backoff``: it draws the wait with *full* jitter,
``randrange(base * 2**n + 1)`` in whole seconds, so any retry may come back at
once. A page answering 500 was asked three times within 0.1 s ("Retry in 0s"
twice), which hammers a server that is already failing. Here every retry waits
at least ``base`` seconds, and retry ``n`` at least ``base * 2**n / 2``
("equal jitter": half the exponential step is fixed, half random), never more
than the cap. A server's Retry-After (or our limiter's "come back in N s") wins
when it is longer.
"""

from __future__ import annotations

import random
from collections.abc import Callable

RETRY_AFTER_MAX_SECONDS = 3600.0
"""The longest Retry-After we honour for a retry; a server asking for days is still tried
again within the hour (and after that its entry falls back like any other)."""
RETRY_AFTER_SPREAD_SECONDS = 5.0
"""Random seconds added to a Retry-After, so the entries a host sent away do not all come
back in the same instant."""
_MAX_EXPONENT = 62  # 2**62 seconds is past any cap; keeps the float finite


def retry_delay(
    retries: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``retries + 1`` (``retries``: retries so far).

    Equal jitter over ``base * 2**retries``, floored at ``base`` and capped at
    ``cap``: the first retry waits exactly ``base``, the second between ``base``
    and ``2 * base``, the third between ``2 * base`` and ``4 * base``, and so on.
    ``retry_after`` (seconds the server asked for) wins when it is longer, plus
    up to :data:`RETRY_AFTER_SPREAD_SECONDS`; it is not held to ``cap``.
    """
    step = min(cap, base * 2.0 ** min(max(retries, 0), _MAX_EXPONENT))
    delay = max(min(base, cap), step / 2 + rand() * step / 2)
    if retry_after is not None and retry_after > 0:
        asked = min(retry_after, RETRY_AFTER_MAX_SECONDS) + rand() * RETRY_AFTER_SPREAD_SECONDS
        delay = max(delay, asked)
    return delay


def defer_delay(wait: float, *, rand: Callable[[], float] = random.random) -> float:
    """Seconds to hold back an entry whose host is paused for ``wait`` seconds: until the
    pause ends, spread over a few seconds so the deferred entries do not all return at once."""
    return min(max(wait, 0.0), RETRY_AFTER_MAX_SECONDS) + rand() * RETRY_AFTER_SPREAD_SECONDS
