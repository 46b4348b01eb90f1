"""Beat's scheduler (``worker.beat_scheduler``) sleeps until an entry is due instead of
spinning through the last 10 ms before it, and still sends every entry on time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from celery import Celery

from worker.beat_scheduler import Scheduler


class RecordingScheduler(Scheduler):  # type: ignore[misc]
    """Records what it would send instead of sending it (no broker here)."""

    producer = None  # tick() passes it to apply_entry; the real one connects to a broker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[float] = []
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        self.sent.append(time.monotonic())


def run_like_beat(scheduler: RecordingScheduler, seconds: float) -> int:
    """Celery's ``beat.Service.start`` loop for ``seconds``; the number of ticks."""
    ticks = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        interval = scheduler.tick()
        ticks += 1
        if interval and interval > 0:
            time.sleep(min(interval, left))
    return ticks


def test_beat_sleeps_until_an_entry_is_due(tmp_path: Path) -> None:
    app = Celery("beat-test", set_as_current=False)
    app.conf.beat_schedule = {"often": {"task": "noop", "schedule": 0.2}}
    scheduler = RecordingScheduler(app, schedule_filename=str(tmp_path / "schedule"))
    try:
        ticks = run_like_beat(scheduler, 1.5)
    finally:
        scheduler.close()
    sends = len(scheduler.sent)
    assert 6 <= sends <= 9  # every 0.2 s (the first at once)
    gaps = [b - a for a, b in zip(scheduler.sent, scheduler.sent[1:], strict=False)]
    assert min(gaps) >= 0.19  # never early
    # About two ticks a send (one sends, one computes the sleep); Celery's own
    # PersistentScheduler spins through its 10 ms of early waking, hundreds a send.
    assert ticks <= 3 * sends + 3, (ticks, sends)
