"""The long-running commands (``api``, ``worker``, ``beat``, ``run``) and the ``demo``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from .common import EXIT_FAILED, JsonOpt, console, emit_json, fail, setup_logging
from .read import print_articles

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def api_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the read API (and /metrics) with uvicorn."""
    setup_logging()
    import uvicorn

    from ..api import create_app

    uvicorn.run(create_app(), host=host, port=port, log_config=None, access_log=False)


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Where to keep the demo database (default: a temp dir).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 180.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the real pipeline over the seed feed, with no Redis and no Docker."""
    from ..demo import run_demo

    target = workdir or Path(tempfile.mkdtemp(prefix="ingest-demo-"))
    try:
        rows = run_demo(target, timeout=timeout)
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        fail(str(exc), code=EXIT_FAILED)
    if as_json:
        emit_json(rows)
    else:
        console.print(f"demo database: {target / 'demo.db'}")
        print_articles(rows)
    if not rows:
        fail("the pipeline stored no article", code=EXIT_FAILED)


def _start_worker_metrics() -> None:
    """Serve merged pool metrics on INGEST_METRICS_PORT, if set.

    prometheus_client picks its multiprocess mode when it is first imported,
    so PROMETHEUS_MULTIPROC_DIR is set (and emptied of a previous run's files)
    here, before anything imports it.
    """
    from ..settings import get_settings

    port = get_settings().metrics_port
    if port is None:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ingest-metrics-")
    from .. import metrics

    metrics.start_worker_server(port)


def _celery_argv(extra: list[str] | None) -> list[str]:
    return list(extra or [])


def worker_cmd(ctx: typer.Context) -> None:
    """Run a Celery worker (extra arguments go to `celery worker`)."""
    _start_worker_metrics()
    setup_logging()
    from ..celery_app import app as celery_app

    celery_app.worker_main(["worker", "--loglevel", "INFO", *_celery_argv(ctx.args)])


def beat_cmd(ctx: typer.Context) -> None:
    """Run the beat scheduler (exactly one per deployment)."""
    setup_logging()
    from ..celery_app import app as celery_app

    celery_app.start(["beat", "--loglevel", "INFO", *_celery_argv(ctx.args)])


def run_cmd(ctx: typer.Context) -> None:
    """Run a worker with embedded beat: one process that does everything."""
    _start_worker_metrics()
    setup_logging()
    from ..celery_app import app as celery_app

    celery_app.worker_main(["worker", "--beat", "--loglevel", "INFO", *_celery_argv(ctx.args)])
