"""A guard around one kombu failure that turns a Redis restart into a worker exit.

When Redis goes away, the worker's consumer closes its channel and the transport
is torn down, but work still in flight then uses the channel: it acknowledges a
finished task, or puts unacknowledged messages back while closing. kombu 5.7 (the
latest release) builds a new Redis client for that from the transport, which is
gone, and raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``
(or ``'client'``) from ``Channel._connparams``. That is not one of the broker's
connection errors, so Celery calls it an "Unrecoverable error" and the whole worker
exits, with status 0. The chaos soak (bench/soak.py) saw it after most Redis restarts.

The guard makes it the connection error it is: ``redis.exceptions.ConnectionError``,
which kombu and Celery already handle (an acknowledgement that could not be sent
is logged and the message comes back after the visibility timeout; the consumer
reconnects). The tasks are idempotent and the entries ledger re-sends whatever
Redis lost, so nothing else needs doing.
"""

from __future__ import annotations

from typing import Any

_GUARDED = "_ingest_connparams_guarded"


def guard_lost_broker_connection() -> None:
    """Wrap kombu's Redis ``Channel._connparams`` (once per process)."""
    import redis.exceptions
    from kombu.transport import redis as kombu_redis

    channel = kombu_redis.Channel
    if getattr(channel, _GUARDED, False):
        return
    original: Any = channel._connparams

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection was closed (Redis went away); reconnecting"
            )
        return original(self, asynchronous=asynchronous)

    setattr(channel, "_connparams", _connparams)  # noqa: B010 (a class attribute, on purpose)
    setattr(channel, _GUARDED, True)
