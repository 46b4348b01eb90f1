"""How entries are grouped into messages, read back from a real Redis queue."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
import redis

from tests.support import services

pytestmark = pytest.mark.integration


def _enqueue_and_read(broker: str, entry_ids: list[int], **env: str) -> list[tuple[str, list]]:
    """Run ``enqueue_entries`` in a fresh process (the Celery app reads its broker
    at import) and return each queued message as ``(task name, args)``."""
    client = redis.Redis.from_url(broker)
    client.flushdb()
    code = f"from worker.tasks import enqueue_entries; enqueue_entries({entry_ids!r})"
    subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "INGEST_BROKER_URL": broker, **env},
        cwd=services.REPO_ROOT,
        check=True,
        timeout=60,
    )
    messages = []
    # kombu LPUSHes and workers BRPOP: the oldest message is at the right.
    for raw in reversed(client.lrange("celery", 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


def test_a_polls_entries_go_out_in_batches(redis_server: services.RedisServer) -> None:
    broker = redis_server.url.replace("/0", "/3")
    assert _enqueue_and_read(broker, list(range(1, 10))) == [
        ("worker.tasks.process_entries", [[1, 2, 3, 4]]),
        ("worker.tasks.process_entries", [[5, 6, 7, 8]]),
        ("worker.tasks.process_entry", [9]),  # a lone entry needs no batch
    ]
    assert _enqueue_and_read(broker, [7, 8, 9], INGEST_ENTRY_BATCH_SIZE="1") == [
        ("worker.tasks.process_entry", [7]),
        ("worker.tasks.process_entry", [8]),
        ("worker.tasks.process_entry", [9]),
    ]
    assert _enqueue_and_read(broker, []) == []
