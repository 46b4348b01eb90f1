"""The metrics hook of the Celery tasks: counters taken from each task's returned
outcome (a ``task_postrun`` signal), so the tasks and the pure core stay free of them.

Connected when :mod:`worker.tasks` is imported, which only the worker does: the API
and the CLI import :mod:`worker.metrics` without Celery.
"""

from __future__ import annotations

from typing import Any

# Task names as :func:`worker.task_policy._task` registers them.
POLL_FEED = "worker.tasks.poll_feed"
PROCESS_ENTRY = "worker.tasks.process_entry"
PROCESS_ENTRIES = "worker.tasks.process_entries"
DELIVER_WEBHOOKS = "worker.tasks.deliver_webhooks"


def metrics() -> Any:
    """:mod:`worker.metrics`, imported when first counted (after the worker has set up
    prometheus_client's multiprocess mode)."""
    from . import metrics as module

    return module


def count_outcome(task: Any = None, retval: Any = None, state: str | None = None, **_: Any) -> None:
    """Turn a finished task's returned outcome into Prometheus counters."""
    if state != "SUCCESS" or not isinstance(retval, dict) or task is None:
        return
    if task.name == POLL_FEED:
        metrics().record_poll(str(retval.get("status")), retval.get("http_status"))
    elif task.name == PROCESS_ENTRY:
        _count_entry(retval)
    elif task.name == PROCESS_ENTRIES:
        for result in retval.get("entries") or []:
            _count_entry(result)
    elif task.name == DELIVER_WEBHOOKS:
        metrics().record_webhooks(int(retval.get("delivered", 0)), int(retval.get("failed", 0)))


def _count_entry(result: dict[str, Any]) -> None:
    # The label travels in the task's return value: no extra query per entry.
    status, action = str(result.get("status")), result.get("action")
    positive = result.get("is_ukraine_security") if action != "updated" else None
    metrics().record_entry(status, action, positive=bool(positive))


def connect() -> None:
    from celery.signals import task_postrun, task_prerun

    module = metrics()
    task_prerun.connect(module.on_task_prerun, weak=False)
    task_postrun.connect(module.on_task_postrun, weak=False)
    task_postrun.connect(count_outcome, weak=False)


connect()
