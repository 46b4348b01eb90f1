"""CPU of ``ingest beat`` with nothing else to do: our scheduler against Celery's own.

Why: beat runs all the time, and with the default schedule it sends a task every
second (``dispatch_webhooks``). Celery's ``PersistentScheduler`` wakes 10 ms before
each due entry and, since Celery 5.7, spins through those 10 ms without sleeping;
``worker.beat_scheduler.Scheduler`` sleeps until the entry is due
(its docstring has the details). This bench runs the real ``ingest beat`` against a
throwaway Redis, once with each scheduler (``--scheduler`` on the command line, which
Celery lets override the app's ``beat_scheduler``), alternating, and reads each beat
process's CPU from ``/proc`` over the same span after a warm-up. No worker runs: the
tasks wait in Redis, so only beat is measured.

    python -m bench.beat_idle                          # default schedule, 2 rounds of 30 s
    python -m bench.beat_idle --poll-interval 1 --seconds 10 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.run import _cpu_s  # noqa: E402
from tests.support import services  # noqa: E402

SCHEDULERS = {
    "ours": "worker.beat_scheduler:Scheduler",
    "celery": "celery.beat:PersistentScheduler",
}


def measure(
    scheduler: str, *, redis_url: str, poll_interval: float, warm_up: float, seconds: float
) -> dict[str, float]:
    """Start beat with ``scheduler``, wait ``warm_up``, then measure ``seconds``."""
    workdir = Path(tempfile.mkdtemp(prefix="beat-idle-"))
    env = {
        "INGEST_DATABASE_URL": f"sqlite:///{workdir / 'unused.db'}",
        "INGEST_BROKER_URL": redis_url,
        "INGEST_BEAT_INTERVAL_SECONDS": str(poll_interval),
    }
    beat = services.start_celery(
        "beat", env, workdir=workdir, extra=["--scheduler", SCHEDULERS[scheduler]]
    )
    try:
        time.sleep(warm_up)
        cpu0, t0 = _cpu_s(beat.process.pid), time.monotonic()
        sent0 = beat.log().count("Sending due task")
        time.sleep(seconds)
        cpu1, t1 = _cpu_s(beat.process.pid), time.monotonic()
        sent = beat.log().count("Sending due task") - sent0
        assert beat.process.poll() is None, beat.log()[-2000:]
    finally:
        beat.stop()
    return {"cpu_ms_per_s": (cpu1 - cpu0) / (t1 - t0) * 1000, "sent_per_s": sent / (t1 - t0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="INGEST_BEAT_INTERVAL_SECONDS (60 = the default; bench/run.py uses 1)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured span per run")
    parser.add_argument("--warm-up", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    redis = services.start_redis()
    try:
        print(f"beat alone, INGEST_BEAT_INTERVAL_SECONDS={args.poll_interval:g}", flush=True)
        for round_ in range(1, args.rounds + 1):
            figures = {
                name: measure(
                    name,
                    redis_url=redis.url,
                    poll_interval=args.poll_interval,
                    warm_up=args.warm_up,
                    seconds=args.seconds,
                )
                for name in SCHEDULERS
            }
            for name, got in figures.items():
                print(
                    f"round {round_}  {name:<7} {got['cpu_ms_per_s']:6.2f} ms CPU per second,"
                    f" {got['sent_per_s']:.2f} tasks sent per second",
                    flush=True,
                )
            ratio = figures["ours"]["cpu_ms_per_s"] / max(figures["celery"]["cpu_ms_per_s"], 1e-9)
            print(f"round {round_}  ours / celery: {ratio:.2f}", flush=True)
    finally:
        redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
