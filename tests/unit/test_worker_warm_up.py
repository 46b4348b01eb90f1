"""Worker process set-up: the pre-fork warm-up (models loaded, long-lived objects
frozen for the GC) and the recycling of pool children."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import services
from tests.support.logs import Events
from worker.classify import weights

PROBE = """
import gc, json
from worker import celery_app
before = gc.get_freeze_count()
celery_app._warm_up_before_fork()
frozen = gc.get_freeze_count()
# Objects made after the warm-up (a child's per-task garbage) are still collected.
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a
del a, b
print(json.dumps({"before": before, "frozen": frozen, "collected": gc.collect()}))
"""


def test_warm_up_freezes_the_preloaded_heap_and_collection_still_works() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=services.REPO_ROOT,
        timeout=120,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["before"] == 0
    assert result["frozen"] > 50_000  # Celery, SQLAlchemy, trafilatura, the classifier
    assert result["collected"] >= 2  # the new reference cycle


DAMAGED_PROBE = """
import sys
from pathlib import Path
from worker import celery_app
from worker.classify import weights
weights.ENGLISH_PATH = Path(sys.argv[1])
celery_app._warm_up_before_fork()
print("warm-up finished")
"""


def test_a_damaged_english_weights_file_stops_the_warm_up(tmp_path: Path) -> None:
    doc = json.loads(weights.ENGLISH_PATH.read_text("utf-8"))
    doc["weights"][next(iter(doc["weights"]))] += 1.0  # one weight edited by hand
    damaged = tmp_path / "classifier_english.json"
    damaged.write_text(json.dumps(doc), "utf-8")
    run = subprocess.run(
        [sys.executable, "-c", DAMAGED_PROBE, str(damaged)],
        capture_output=True,
        text=True,
        cwd=services.REPO_ROOT,
        timeout=120,
    )
    assert run.returncode != 0
    assert "warm-up finished" not in run.stdout
    assert f"ModelFileError: {damaged}: weights do not match their sha256" in run.stderr


BROKEN_PROBE = """
from worker import celery_app, extract
from worker.logging import configure_logging

def broken(*_args, **_kwargs):
    raise RuntimeError("extractor broke")

extract.extract_article = broken
configure_logging("INFO")
celery_app._warm_up_before_fork()
print("warm-up finished")
"""


def test_a_warm_up_that_fails_otherwise_is_logged_and_the_worker_starts() -> None:
    run = subprocess.run(
        [sys.executable, "-c", BROKEN_PROBE],
        capture_output=True,
        text=True,
        cwd=services.REPO_ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "warm-up finished" in run.stdout
    Events.parse(run.stderr).expect("warm_up_failed", error="extractor broke", level="warning")


def test_children_are_recycled_by_memory_and_after_many_entries_whatever_the_batch() -> None:
    from worker.celery_app import make_celery
    from worker.settings import Settings

    def conf(**values: int) -> tuple[int, int]:
        app = make_celery(Settings(broker_url="redis://127.0.0.1:1/0", **values))  # type: ignore[arg-type]
        return int(app.conf.worker_max_tasks_per_child), int(app.conf.worker_max_memory_per_child)

    assert conf() == (1_250, 600 * 1024)  # 10,000 entries in batches of 8; 600 MiB in KiB
    assert conf(entry_batch_size=1, child_max_entries=500) == (500, 600 * 1024)
    assert conf(entry_batch_size=100, child_max_entries=500, child_max_memory_mb=64) == (
        5,
        64 * 1024,
    )
    assert conf(entry_batch_size=100, child_max_entries=1) == (1, 600 * 1024)
