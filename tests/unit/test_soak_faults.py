"""The soak kills a pool process only in a worker that has been ready for a moment
(bench/soak.py, ``FaultScheduler.kill_pool_child``).

Celery checks once, right after its "ready" line, that no pool process has exited, and
exits if one has ("Could not start worker processes"). A child killed before that check
is Celery's start-up check failing, not a fault of the running deployment; the soak once
counted it as a violation. These tests run a real process with a real child, and check
which kills the scheduler makes and which it refuses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import soak
from bench.run import _children
from tests.support.services import CeleryProcess

# A stand-in for a worker's main process: one child that sleeps, like a pool process.
PARENT_WITH_A_CHILD = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "time.sleep(60)"
)


@pytest.fixture
def worker(tmp_path: Path) -> CeleryProcess:
    log_path = tmp_path / "celery-worker.log"
    log_path.write_text("[INFO/MainProcess] Connected to redis://127.0.0.1\n")
    process = subprocess.Popen([sys.executable, "-c", PARENT_WITH_A_CHILD])
    proc = CeleryProcess(process=process, log_path=log_path)
    deadline = time.monotonic() + 10
    while not _children(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield proc
    for pid in _children(process.pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
    process.kill()
    process.wait()


def _running(pid: int) -> bool:
    """Alive and not a zombie (the stand-in parent does not reap its killed child)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _scheduler(worker: CeleryProcess) -> soak.FaultScheduler:
    deployment = SimpleNamespace(workers={"w1": worker})
    return soak.FaultScheduler(
        deployment,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        seed=1, mean_gap=1.0, until=0.0, short=True,
    )  # fmt: skip


def test_a_pool_process_is_killed_only_once_its_worker_has_been_ready_a_moment(
    worker: CeleryProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(soak, "READY_GRACE_S", 0.2)
    faults = _scheduler(worker)
    (child,) = _children(worker.process.pid)

    assert faults.kill_pool_child() is None  # still starting: no "ready" yet
    with worker.log_path.open("a") as log:
        log.write("[INFO/MainProcess] celery@w1 ready.\n")
    assert faults.kill_pool_child() is None  # ready just now: Celery may not have checked
    assert _running(child)

    time.sleep(0.3)
    assert faults.kill_pool_child() == f"w1 child {child}"
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _running(child)


def test_a_worker_waiting_to_be_restarted_is_left_alone(
    worker: CeleryProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(soak, "READY_GRACE_S", 0.0)
    worker.log_path.write_text("[INFO/MainProcess] celery@w1 ready.\n")
    faults = _scheduler(worker)
    faults.down.add("w1")
    assert faults.kill_pool_child() is None
    assert all(_running(pid) for pid in _children(worker.process.pid))
