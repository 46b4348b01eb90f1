"""Cost of enqueueing a poll's new entries: one ``delay()`` each vs one publish batch.

    .venv/bin/python bench/publish_batch.py [--messages 2000] [--batch 25]

Starts a throwaway redis-server on 127.0.0.1 and publishes ``process_entry``
messages both ways, twice, in the same run; prints the publisher's CPU and wall
time per message. Nothing consumes them (the server is discarded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=25, help="entries per poll")
    args = parser.parse_args()

    from tests.support import services

    redis = services.start_redis()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
            # The Celery app reads its broker from the settings at import.
            os.environ["INGEST_BROKER_URL"] = redis.url
            os.environ["INGEST_DATABASE_URL"] = f"sqlite:///{tmp}/unused.db"
            from worker import tasks

            n, size = args.messages, args.batch
            for _round in range(2):
                cpu, wall = time.process_time(), time.perf_counter()
                for entry_id in range(n):
                    tasks.process_entry.delay(entry_id, force=False)
                one = ((time.process_time() - cpu) / n, (time.perf_counter() - wall) / n)
                cpu, wall = time.process_time(), time.perf_counter()
                for start in range(0, n, size):
                    tasks.enqueue_entries(list(range(start, min(start + size, n))))
                batch = ((time.process_time() - cpu) / n, (time.perf_counter() - wall) / n)
                print(
                    f"per message: delay() {one[0] * 1000:.3f} ms CPU ({one[1] * 1000:.3f} wall); "
                    f"batches of {size}: {batch[0] * 1000:.3f} ms CPU ({batch[1] * 1000:.3f} wall)"
                )
    finally:
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
