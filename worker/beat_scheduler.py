"""Beat's scheduler: Celery's ``PersistentScheduler`` without its busy wait before each
due task.

Why: Celery's ``Scheduler.adjust`` wakes beat 10 ms before an entry is due (a drift of
-0.010 s). Since Celery 5.7 (celery/celery#10468, the fix of #7649) an entry that is not
yet due when beat wakes is put back on the heap at once and ``tick`` returns 0, so beat
does not sleep: it spins through those 10 ms, a hundred ticks or more for every task it
sends. With the default schedule (``dispatch_webhooks`` every second) beat alone used
about 10 ms of CPU a second, 1 % of a core with nothing to do; without the early drift it
sleeps until the entry is due, sends it on the first tick, and uses about 2
(``python -m bench.beat_idle``, docs/benchmark.md).
"""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler


class Scheduler(PersistentScheduler):  # type: ignore[misc]
    """``celery.beat.PersistentScheduler`` (the schedule in a shelve file, as before),
    waking when an entry is due rather than 10 ms before."""

    def adjust(self, n: Any, drift: float = 0.0) -> Any:
        return n
