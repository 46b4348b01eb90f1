"""The soak's report says why a process it had to restart exited (bench/soak.py)."""

from __future__ import annotations

from bench.soak import _last_error

CELERY_LOG_OF_AN_UNRECOVERABLE_ERROR = """\
[2026-12-04 23:49:01,120: INFO/MainProcess] celery@w2 ready.
[2026-12-04 23:49:07,551: CRITICAL/MainProcess] Unrecoverable error: AttributeError(...)
Traceback (most recent call last):
  File "celery/worker/worker.py", line 203, in start
AttributeError: 'NoneType' object has no attribute 'hostname'
[2026-12-04 23:49:07,602: INFO/MainProcess] worker: Warm shutdown
"""


def test_the_report_names_the_last_error_in_the_exited_process_log() -> None:
    assert _last_error(CELERY_LOG_OF_AN_UNRECOVERABLE_ERROR) == (
        "AttributeError: 'NoneType' object has no attribute 'hostname'"
    )


def test_a_log_without_an_error_says_so() -> None:
    assert _last_error("celery@w2 ready.\nworker: Warm shutdown\n") == "no error in its log"
