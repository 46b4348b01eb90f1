"""Where a pool process's CPU goes, stage by stage: ``bench/run.py --stage-cpu``.

Why: the benchmark's CPU ratio says how much more CPU an article costs end to end
than the bare work, and by process (pool, PostgreSQL, Redis, ...), but not what
inside the pool costs it. A sampling profiler is no help there: py-spy counts a
thread blocked in ``recv`` on Redis or PostgreSQL as running, which puts the store
and the rate limiter at several times their real cost. This module measures with
the threads' own CPU clocks (``time.thread_time``, user + system) instead, and with
wall time beside them: a stage's wall less its CPU is what it waited on.

``python -m bench.stage_cpu worker ...`` is ``ingest worker ...`` with probes put
around the pipeline's stage functions before the pool forks, so every pool child
inherits them. Nothing in ``worker/`` changes; the probes replace module attributes
the pipeline looks up at call time. Each probe adds the CPU its thread spent in
the call, *less* what nested probes already counted, to its stage (so the stages
add up, none counted twice). After every task, the child writes its totals to
``$BENCH_STAGE_CPU_DIR/<pid>.json``; ``bench/run.py`` reads them before and after
the end-to-end phase and puts the difference per entry beside the bare work's
CPU per page. What no probe covers (Celery and billiard's handling of the task,
the fetch thread outside the fetch, logging, garbage collection outside a probed
call) is the pool's CPU less the stages' sum.

A probe costs about 2 µs a call (2.2 µs against 0.1 for the bare call, measured on
this host), ~10 calls an entry: 0.02 ms of an entry's ~40.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ENV_DIR = "BENCH_STAGE_CPU_DIR"

# (module, attribute, stage). The bare work's stages first, in the order the
# pipeline runs them; bench/run.py's baseline does the same five per page.
BARE_STAGES = ("decode", "extract", "canonical", "classify", "fingerprint")
PROBES: tuple[tuple[str, str, str], ...] = (
    ("worker.pipeline.entries", "decode_html", "decode"),
    ("worker.pipeline.entries", "extract_article", "extract"),
    ("worker.pipeline.entries", "canonicalize_url", "canonical"),
    ("worker.pipeline.entries", "classify", "classify"),
    ("worker.dedup", "fingerprint", "fingerprint"),
    # What the deployment adds.
    ("worker.pipeline", "poll_feed", "poll"),
    ("worker.tasks", "enqueue_entries", "enqueue"),
    ("worker.pipeline", "start_attempt", "begin"),
    ("worker.pipeline", "begin_entries", "begin"),
    ("worker.pipeline.entries", "begin_entry", "begin"),
    ("worker.pipeline.entries", "fetch_page", "fetch"),
    # prepare_entry less its nested stages: mostly waiting for the prefetched page.
    ("worker.pipeline", "prepare_entry", "prepare"),
    ("worker.pipeline", "store_prepared", "store"),
    ("worker.pipeline", "store_prepared_batch", "store"),
)
STAGES = tuple(dict.fromkeys(stage for _m, _a, stage in PROBES))

_lock = threading.Lock()
_local = threading.local()
_cpu: dict[str, float] = dict.fromkeys(STAGES, 0.0)
_wall: dict[str, float] = dict.fromkeys(STAGES, 0.0)
_calls: dict[str, int] = dict.fromkeys(STAGES, 0)


def probe(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, with the CPU and the wall time its thread spends in it counted to
    ``stage`` (what nested probes counted excepted)."""

    @functools.wraps(fn)
    def probed(*args: Any, **kwargs: Any) -> Any:
        stack: list[list[float]] | None = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append([0.0, 0.0])  # CPU and wall of the probes nested in this call
        started_cpu, started_wall = time.thread_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu = time.thread_time() - started_cpu
            wall = time.perf_counter() - started_wall
            nested_cpu, nested_wall = stack.pop()
            if stack:
                stack[-1][0] += cpu
                stack[-1][1] += wall
            with _lock:
                _cpu[stage] = _cpu.get(stage, 0.0) + cpu - nested_cpu
                _wall[stage] = _wall.get(stage, 0.0) + wall - nested_wall
                _calls[stage] = _calls.get(stage, 0) + 1

    probed.__wrapped_stage__ = stage  # type: ignore[attr-defined]
    return probed


def install(probes: Iterable[tuple[str, str, str]] = PROBES) -> None:
    """Replace each probed attribute by its probe (once; a second call changes nothing)."""
    for module_name, attribute, stage in probes:
        module = importlib.import_module(module_name)
        current = getattr(module, attribute)
        if getattr(current, "__wrapped_stage__", None) is None:
            setattr(module, attribute, probe(stage, current))


def snapshot() -> dict[str, Any]:
    """This process's totals so far, with its own CPU clock for reference."""
    with _lock:
        return {
            "pid": os.getpid(),
            "process_cpu_s": time.process_time(),
            "cpu_s": dict(_cpu),
            "wall_s": dict(_wall),
            "calls": dict(_calls),
        }


def write(directory: Path) -> None:
    """Write this process's totals (atomically: the reader never sees half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{os.getpid()}.json"
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(snapshot()))
    partial.replace(target)


def read(directory: Path) -> dict[int, dict[str, Any]]:
    """Every process's last written totals, by pid."""
    found: dict[int, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found[int(data["pid"])] = data
    return found


def per_entry(
    before: dict[int, dict[str, Any]],
    after: dict[int, dict[str, Any]],
    *,
    entries: int,
    clock: str = "cpu_s",
) -> dict[str, float]:
    """Milliseconds per entry, by stage, between two :func:`read` results: of CPU
    (``clock="cpu_s"``) or of wall time (``"wall_s"``; a stage's wall less its CPU is
    what its thread waited there: the database, a lock, a page still arriving).

    A process that appeared between the two (a recycled child's successor) counts
    from zero.
    """
    totals = dict.fromkeys(STAGES, 0.0)
    for pid, data in after.items():
        start = before.get(pid, {}).get(clock, {})
        for stage in STAGES:
            totals[stage] += data.get(clock, {}).get(stage, 0.0) - start.get(stage, 0.0)
    return {stage: round(seconds * 1000 / max(entries, 1), 2) for stage, seconds in totals.items()}


def budget(
    cpu: dict[str, float], wall: dict[str, float], *, pool_ms: float, process_wall_ms: float
) -> dict[str, Any]:
    """What ``bench/run.py`` reports: the probed stages' CPU (ms per entry, from
    :func:`per_entry`), the bare work's share of it, the pool's
    CPU that no probe covered (Celery, billiard, logging, the fetch thread's own),
    and where a pool process's wall time went.

    ``waits``: each stage's wall less its CPU, what its thread waited there (the
    database and its locks for begin and store, the page still arriving for
    prepare). ``outside_stages`` is a pool process's wall per entry (the phase's
    length x processes / entries) less the stages run on its main thread (all but
    the fetch, which runs on the prefetch thread): Celery's handling of a task, and
    the time the process waited for its next task.
    """
    bare = round(sum(cpu[s] for s in BARE_STAGES), 2)
    main_thread_wall = sum(v for k, v in wall.items() if k != "fetch")
    return {
        "stages": cpu,
        "bare_work": bare,
        "not_probed": round(pool_ms - sum(cpu.values()), 2),
        "pool_added": round(pool_ms - bare, 2),
        "waits": {k: round(wall[k] - cpu[k], 2) for k in cpu},
        "process_wall": round(process_wall_ms, 2),
        "outside_stages": round(process_wall_ms - main_thread_wall, 2),
    }


def _connect(directory: Path) -> None:
    """Probe when the worker starts (its main process, before the pool forks, so
    every child inherits the probes), and write the totals after every task.

    Not at import: ``worker.tasks`` must not be imported before ``ingest worker``
    has set up the metrics' multiprocess mode."""
    from celery.signals import task_postrun, worker_init

    def at_start(**_kwargs: Any) -> None:
        install()

    def after_task(**_kwargs: Any) -> None:
        write(directory)

    worker_init.connect(at_start, weak=False)
    task_postrun.connect(after_task, weak=False)


def main(argv: list[str]) -> None:
    """``python -m bench.stage_cpu worker ARGS``: ``ingest worker ARGS``, probed."""
    _connect(Path(os.environ[ENV_DIR]))
    from worker.cli import main as ingest

    sys.argv = ["ingest", *argv]
    ingest()


if __name__ == "__main__":
    main(sys.argv[1:])
