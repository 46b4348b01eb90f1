"""The worker's pre-fork warm-up: models loaded, long-lived objects frozen for the GC."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import services

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
