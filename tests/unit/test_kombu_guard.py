"""The kombu guard (worker/kombu_guard.py): a channel whose transport is gone raises the
broker connection error Celery recovers from, not the AttributeError that made the
worker exit after a Redis restart (found by the chaos soak). The live path, a channel
with its transport, is the one every test with a real worker takes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis.exceptions
from kombu.transport import redis as kombu_redis

from worker.kombu_guard import guard_lost_broker_connection


def test_a_channel_without_its_transport_raises_a_connection_error() -> None:
    guard_lost_broker_connection()
    guard_lost_broker_connection()  # idempotent: one wrapper, not two
    for orphan in (SimpleNamespace(connection=None),
                   SimpleNamespace(connection=SimpleNamespace(client=None))):  # fmt: skip
        with pytest.raises(redis.exceptions.ConnectionError, match="broker connection"):
            kombu_redis.Channel._connparams(orphan)
