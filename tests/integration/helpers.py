"""Helpers for integration tests: a local news web built from real pages, worker and
beat processes that always stop, and waiting."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from tests.support import services
from tests.support.logs import Events
from worker.db import session_scope
from worker.localweb import LocalWeb
from worker.models import Entry

REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS = REPO_ROOT / "seeds"

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 90.0, interval: float = 0.5, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")


def worker_env(database_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a worker/beat under test: local pages allowed, no pacing."""
    env = {
        "INGEST_DATABASE_URL": database_url,
        "INGEST_BROKER_URL": broker_url,
        "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "INGEST_BEAT_INTERVAL_SECONDS": "1",
        # If a per-host politeness limiter is active, it must not pace the test.
        "INGEST_PER_HOST_RATE": "1000",
        "INGEST_PER_HOST_BURST": "1000",
        "INGEST_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


@dataclass
class CeleryRun:
    """The ``ingest worker`` processes (and ``ingest beat``) started by :func:`running_celery`."""

    workers: list[services.CeleryProcess] = field(default_factory=list)
    beat: services.CeleryProcess | None = None

    @property
    def worker(self) -> services.CeleryProcess:
        return self.workers[0]

    def log(self) -> str:
        return "".join(worker.log() for worker in self.workers)

    def events(self) -> Events:
        """The structured events the workers have logged so far."""
        return Events.parse(self.log())


def wait_ready(worker: services.CeleryProcess, *, timeout: float = 120.0) -> None:
    """Wait until the worker consumes (after its warm-up); fail at once if it exits."""

    def ready() -> bool:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.process.returncode}):\n{worker.log()}")
        return " ready." in worker.log()

    wait_until(ready, timeout=timeout, interval=0.2, what="worker ready")


@contextmanager
def running_celery(
    env: dict[str, str],
    workdir: Path,
    *,
    workers: int = 1,
    beat: bool = False,
    concurrency: int = 2,
) -> Iterator[CeleryRun]:
    """``workers`` worker processes, each ready before it is handed over, then beat if
    asked; stopped (beat first) however the test ends. ``env`` comes from
    :func:`worker_env`."""
    celery = CeleryRun()
    try:
        for n in range(workers):
            name = ["-n", f"w{n + 1}@%h"] if workers > 1 else None
            celery.workers.append(
                services.start_celery(
                    "worker", env, workdir=workdir, concurrency=concurrency, extra=name
                )
            )
        for worker in celery.workers:
            wait_ready(worker)
        if beat:
            celery.beat = services.start_celery("beat", env, workdir=workdir)
        yield celery
    finally:
        if celery.beat is not None:
            celery.beat.stop()
        for worker in celery.workers:
            worker.stop()


def processed(expected: int | None = None) -> bool:
    """Whether every entry is past ``pending`` (and there are ``expected`` of them):
    a predicate for :func:`wait_until`."""
    with session_scope() as session:
        statuses = session.exec(select(Entry.status)).all()
    if expected is not None and len(statuses) != expected:
        return False
    return bool(statuses) and "pending" not in statuses


def wait_stored(expected: int, *, timeout: float = 90.0) -> list[Entry]:
    """All entries, once there are ``expected`` and every one is stored."""

    def stored() -> list[Entry]:
        with session_scope() as session:
            entries = list(session.exec(select(Entry)).all())
        done = len(entries) == expected and all(e.status == "stored" for e in entries)
        return entries if done else []

    return wait_until(stored, timeout=timeout, what=f"{expected} entries stored")


def fundus_page(shared_data: Path, key: str) -> tuple[bytes, dict[str, str]]:
    """The raw HTML and ground-truth record of one page of the fundus set."""
    truth = json.loads((shared_data / "fundus" / "fundus_ground_truth.json").read_text())
    record = truth[key]
    html = gzip.decompress((shared_data / "fundus" / record["html"]).read_bytes())
    return html, record


def rss(items: list[dict[str, str]], *, title: str = "Local test feed") -> str:
    """An RSS 2.0 document; each item has title, link and optionally guid/description."""
    now = datetime(2026, 5, 24, 12, 0, tzinfo=UTC)
    parts = []
    for n, item in enumerate(items):
        guid = f'<guid isPermaLink="false">{escape(item["guid"])}</guid>' if "guid" in item else ""
        pub = format_datetime(now - timedelta(hours=n), usegmt=True)
        parts.append(
            f"<item><title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
            f"{guid}<pubDate>{pub}</pubDate>"
            f"<description>{escape(item.get('description', ''))}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>"
        + "".join(parts)
        + "</channel></rss>"
    )


def serve_seed(web: LocalWeb) -> None:
    for name in ("seed-article.html", "seed-feed.xml"):
        web.add_page(name, (SEEDS / name).read_bytes())


def detached(model: type[T], row_id: int) -> T:
    """The row as it is now, detached from its session so a test can read it later."""
    from worker.db import session_scope

    with session_scope() as session:
        row = session.get(model, row_id)
        assert row is not None, f"no {model.__name__} {row_id}"
        session.expunge(row)
        return row


def hanging_page(release: threading.Event) -> Any:
    """A page that accepts the request and answers nothing until ``release`` is set
    (the ``release`` fixture sets it at teardown)."""

    def route(_handler: BaseHTTPRequestHandler) -> None:
        release.wait(30)

    return route


def dripping_page(body: bytes, *, chunk: int = 64, every: float = 0.25) -> Any:
    """A page whose body trickles in: every read succeeds well within the read
    timeout, but the whole page takes minutes (a slowloris-like server)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for start in range(0, len(body), chunk):
                handler.wfile.write(body[start : start + chunk])
                handler.wfile.flush()
                time.sleep(every)
        except OSError:  # the client gave up: that is the point
            return

    return route


@contextmanager
def counted_selects() -> Iterator[list[str]]:
    """The SELECT statements any engine sends while the block runs (reads run on an
    autocommit engine of their own on PostgreSQL, so the event is on the class)."""
    with counted_statements(lambda sql: sql.lstrip().upper().startswith("SELECT")) as selects:
        yield selects


@contextmanager
def counted_statements(keep: Callable[[str], bool] = lambda _sql: True) -> Iterator[list[str]]:
    """The statements (those ``keep`` accepts) any engine sends while the block runs."""
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if keep(statement):
            statements.append(statement)

    sa.event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        sa.event.remove(Engine, "before_cursor_execute", capture)
