"""``ingest demo``: the real pipeline end to end, with nothing but Python.

It serves the ``seeds/`` feed from a local HTTP server on 127.0.0.1, uses a
SQLite database and kombu's SQLAlchemy transport on SQLite as the broker (so
no Redis is needed), starts a real Celery worker with embedded beat as a
subprocess, waits until every entry of the seed feed has been processed, and
returns the stored articles.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from .localweb import LocalWeb

SEED_FEED_NAME = "seed-desk"


def find_seeds_dir() -> Path:
    """``seeds/`` next to the package (a checkout) or in the working directory."""
    for candidate in (Path(__file__).resolve().parent.parent / "seeds", Path.cwd() / "seeds"):
        if (candidate / "seed-feed.xml").is_file():
            return candidate
    raise FileNotFoundError("seeds/seed-feed.xml not found; run `ingest demo` from the repository")


def demo_environment(workdir: Path) -> dict[str, str]:
    return {
        "INGEST_DATABASE_URL": f"sqlite:///{workdir / 'demo.db'}",
        "INGEST_BROKER_URL": f"sqla+sqlite:///{workdir / 'broker.db'}",
        "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "INGEST_BEAT_INTERVAL_SECONDS": "2",
        "INGEST_LOG_JSON": "false",
        "INGEST_LOG_LEVEL": "WARNING",
    }


def run_demo(workdir: Path, *, timeout: float = 180.0) -> list[dict[str, Any]]:
    """Run the pipeline over the seed feed; returns the stored articles as dicts."""
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("demo.db", "demo.db-wal", "demo.db-shm", "broker.db", "celerybeat-schedule"):
        (workdir / stale).unlink(missing_ok=True)
    os.environ.update(demo_environment(workdir))
    from . import migrate, store
    from .db import dispose_engines, session_scope
    from .models import Article, Entry, Feed
    from .settings import reset_settings

    reset_settings()
    dispose_engines()
    migrate.upgrade()
    seeds = find_seeds_dir()
    with LocalWeb(seeds) as web:
        with session_scope() as session:
            store.upsert_feed(session, name=SEED_FEED_NAME, url=web.url("seed-feed.xml"))
        command = [
            sys.executable, "-m", "celery", "--quiet", "-A", "worker.celery_app", "worker",
            "--beat", "--concurrency", "2", "--loglevel", "WARNING",
            "--schedule", str(workdir / "celerybeat-schedule"),
        ]  # fmt: skip
        log_path = workdir / "worker.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                command, env=os.environ.copy(), cwd=workdir, stdout=log_file, stderr=log_file
            )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"worker exited early (code {proc.returncode}):\n{tail}")
                with session_scope() as session:
                    feed = session.exec(select(Feed).where(col(Feed.name) == SEED_FEED_NAME)).one()
                    statuses = session.exec(
                        select(Entry.status).where(col(Entry.feed_id) == feed.id)
                    ).all()
                if statuses and all(s != "pending" for s in statuses):
                    break
                time.sleep(0.5)
            else:
                raise TimeoutError(
                    f"seed feed not processed within {timeout:.0f}s; worker log: {log_path}"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    with session_scope() as session:
        articles = session.exec(select(Article).order_by(col(Article.id))).all()
        return [
            {
                "id": a.id,
                "title": a.title,
                "canonical_url": a.canonical_url,
                "is_ukraine_security": a.is_ukraine_security,
                "security_score": a.security_score,
                "topics": a.topics,
                "extraction_method": a.extraction_method,
                "story_id": a.story_id,
            }
            for a in articles
        ]
