"""How soon does a webhook consumer hear of a new Ukraine-security article? (issue #19,
pushed events: "within 5 s of storage, p95, in a steady run")

A real ``redis-server``, a real Celery worker and beat (``ingest worker`` / ``ingest beat``
with the default ``INGEST_WEBHOOK_INTERVAL_SECONDS``), a real local receiver on
127.0.0.1 and one subscription filtered to ``ukraine-security``. A steady stream of
articles is stored through the real store path (``store.save_article``: classified,
fingerprinted, deduplicated into stories, one transaction each), a quarter of them about
something else so the filter has work. Latency is from the article's ``created_at`` (set
in its storing transaction, just before the commit) to the receiver having read the
request; it reports p50/p95/max, events sent, duplicates (same ``webhook-id`` twice) and
any positive article that never arrived.

    python -m bench.webhook_latency                      # 120 articles at 2/s, SQLite
    python -m bench.webhook_latency --postgres           # the same on PostgreSQL
    python -m bench.webhook_latency --articles 20 --rate 4   # the test's short mode
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.integration.helpers import wait_ready, worker_env
from tests.support import services
from tests.support.receiver import Receiver, verifies

ABOUT_UKRAINE = (
    "Ukraine's air defence shot down {n} drones Russia launched overnight at Kyiv and Odesa, "
    "the air force said, as European defence ministers discussed security guarantees, "
    "military aid and a reassurance force for after a ceasefire. Officials in Kyiv said "
    "talks on artillery deliveries and air defence systems continued. "
)
ABOUT_OTHER = (
    "The city council of a small coastal town approved {n} new bicycle lanes and a "
    "renovation of the harbour market, the mayor said, after residents asked for more "
    "parking and longer opening hours at the public library. "
)


def _record(n: int, *, positive: bool, rng: random.Random) -> Any:
    from worker import dedup, store
    from worker.classify import classify

    # Distinct words per article, so each is a new story rather than a copy.
    words = " ".join(f"w{rng.randrange(1_000_000)}" for _ in range(40))
    body = ((ABOUT_UKRAINE if positive else ABOUT_OTHER).format(n=n) + words + ". ") * 3
    title = f"Report {n}: " + (
        "Kyiv repels drones as allies weigh guarantees" if positive else "Town approves lanes"
    )
    url = f"https://bench.example/{uuid.uuid4().hex}"
    return store.ArticleRecord(
        url=url, canonical_url=url, feed_id=None, guid=None, title=title, body=body,
        summary=None, author=None, published_at=None, language="en",
        extraction_method="trafilatura",
        fingerprint=dedup.fingerprint(title=title, body=body, published_at=None),
        classification=classify(title=title, body=body, language="en"),
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One steady run; returns the figures (and prints nothing)."""
    from worker import migrate, operations, store
    from worker.db import dispose_engines, session_scope
    from worker.models import Article
    from worker.schemas import SubscriptionIn
    from worker.settings import reset_settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    redis = services.start_redis()
    pg = services.start_postgres() if args.postgres else None
    database_url = (
        pg.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        if pg
        else f"sqlite:///{workdir / 'bench.db'}"
    )
    env = worker_env(database_url, redis.url)
    env.pop("INGEST_BEAT_INTERVAL_SECONDS")  # no feeds here; the defaults otherwise
    receiver = Receiver().start()
    worker = beat = None
    try:
        os.environ.update(env)
        reset_settings()
        dispose_engines()
        migrate.upgrade(database_url)
        created = operations.add_subscription(
            SubscriptionIn(url=receiver.url, label="ukraine-security")
        )
        worker = services.start_celery("worker", env, workdir=workdir, concurrency=2)
        wait_ready(worker)
        beat = services.start_celery("beat", env, workdir=workdir)
        time.sleep(2)  # beat's first tick
        rng = random.Random(7)
        positives: list[int] = []
        started = time.monotonic()
        for n in range(args.articles):
            due = started + n / args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            record = _record(n, positive=n % 4 != 3, rng=rng)
            with session_scope() as session:
                outcome = store.save_article(session, record)
            if record.classification.is_ukraine_security and outcome.article_id is not None:
                positives.append(outcome.article_id)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            got = {r.event["data"]["id"] for r in receiver.distinct()}
            if set(positives) <= got:
                break
            time.sleep(0.2)
        with session_scope() as session:
            stored = {
                a: session.get(Article, a).created_at.timestamp()  # type: ignore[union-attr]
                for a in positives
            }
        events = receiver.distinct()
        latencies = sorted(
            r.at - stored[r.event["data"]["id"]] for r in events if r.event["data"]["id"] in stored
        )
        missing = sorted(set(positives) - {r.event["data"]["id"] for r in events})
        return {
            "database": "postgresql" if pg else "sqlite",
            "articles": args.articles,
            "rate_per_second": args.rate,
            "positives": len(positives),
            "events": len(events),
            "requests": len(receiver.requests),
            "duplicates": len(receiver.requests) - len(events),
            "missing": len(missing),
            "all_signatures_valid": all(verifies(r, created.secret) for r in receiver.requests),
            "in_order": [r.event["position"] for r in events]
            == sorted(r.event["position"] for r in events),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p95_s": round(_p95(latencies), 3) if latencies else None,
            "latency_max_s": round(latencies[-1], 3) if latencies else None,
        }
    finally:
        if beat is not None:
            beat.stop()
        if worker is not None:
            worker.stop()
        receiver.stop()
        dispose_engines()
        redis.stop()
        if pg is not None:
            pg.stop()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=120)
    parser.add_argument("--rate", type=float, default=2.0, help="Articles stored per second.")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0, help="Wait for stragglers.")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
