"""Running a benchmark's ``main()`` inside the test process.

``bench/run.py``'s ``run_worker`` (which ``bench.peers`` and ``bench.workers_curve``
use too) points ``os.environ`` and the cached settings and engines at the Redis and
database it starts. A test that calls it must put all of that back, or the next
test would talk to services that are gone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


def run_bench_main(
    main: Callable[[list[str]], int],
    args: list[str],
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    """``main(args)``, with the environment, settings, engines and this process's cores
    (``--services-core`` pins it) restored afterwards."""
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    saved = dict(os.environ)
    cores = os.sched_getaffinity(0)
    monkeypatch.setenv("INGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    try:
        return main(args)
    finally:
        os.sched_setaffinity(0, cores)
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        dispose_engines()
