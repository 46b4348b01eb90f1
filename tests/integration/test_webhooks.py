"""Webhooks against a real local receiver: matching changes arrive signed and in order;
failures back off, pause after N and lose nothing on resume; two runs never overlap;
the SSRF guard holds at creation and at delivery; the API and CLI round trips; the copy
keeps subscriptions. Then real worker and beat processes: delivery within seconds, a
receiver that is down for a while, and a worker SIGKILLed mid-delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.integration.helpers import running_celery, wait_ready, wait_until, worker_env
from tests.support import services
from tests.support.factories import add_listed_article
from tests.support.receiver import Receiver, verifies
from worker import database_ops, operations, store
from worker.cli import app as cli_app
from worker.db import session_scope
from worker.models import Article, Subscription, utcnow
from worker.pipeline import webhooks as delivery
from worker.schemas import SubscriptionCreated, SubscriptionIn
from worker.settings import Settings, get_settings
from worker.webhooks import new_secret

pytestmark = pytest.mark.integration

TOKEN = "hooks-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def settings(**changes: Any) -> Settings:
    return get_settings().model_copy(update={"webhook_timeout_seconds": 3.0, **changes})


def deliver(subscription_id: int, config: Settings | None = None, **options: Any) -> Any:
    config = config or settings()
    poster = delivery.make_poster(config)
    try:
        return delivery.deliver(
            subscription_id, poster=poster, settings=config, owner="test", **options
        )
    finally:
        poster.close()


def subscribe(url: str, **spec: Any) -> SubscriptionCreated:
    return operations.add_subscription(SubscriptionIn(url=url, **spec))


def row(subscription_id: int) -> Subscription:
    with session_scope() as session:
        found = session.get(Subscription, subscription_id)
        assert found is not None
        return found


def later(seconds: float = 3600) -> Any:
    return lambda: utcnow() + timedelta(seconds=seconds)


# --- delivery, in process ------------------------------------------------------------


def test_matching_changes_arrive_signed_and_in_order(database_url: str, receiver: Receiver) -> None:
    """Only Ukraine-security articles, each once, in position order, each signature
    valid with the subscription's secret; then the subscription is caught up."""
    add_listed_article(n=0, positive=True)  # before the subscription: not sent
    created = subscribe(receiver.url, label="ukraine-security")
    wanted = [
        add_listed_article(n=n, positive=n % 2 == 1, topics=["battlefield"]) for n in range(1, 7)
    ]
    wanted = [a for n, a in enumerate(wanted, start=1) if n % 2 == 1]

    outcome = deliver(created.id)

    assert (outcome.status, outcome.delivered) == ("caught_up", 3)
    events = [r.event for r in receiver.requests]
    assert [e["data"]["id"] for e in events] == wanted
    assert {e["type"] for e in events} == {"article.created"}
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    assert [r.webhook_id for r in receiver.requests] == [f"{created.id}-{p}" for p in positions]
    assert [e["id"] for e in events] == [r.webhook_id for r in receiver.requests]
    assert all(verifies(r, created.secret) for r in receiver.requests)
    assert not verifies(receiver.requests[0], new_secret())
    assert events[0]["data"]["label"] == "ukraine-security"
    assert events[0]["data"]["body"] is None  # the listing's shape: no body
    after = operations.get_subscription(created.id)
    assert (after.lag, after.consecutive_failures, after.last_http_status) == (0, 0, 204)
    assert deliver(created.id).delivered == 0


def test_topics_and_kinds_filter(database_url: str, receiver: Receiver) -> None:
    created = subscribe(receiver.url, topics=["sanctions"], kinds=["article", "story"])
    add_listed_article(n=1, topics=["battlefield"])
    hit = add_listed_article(n=2, topics=["sanctions", "military_aid"], positive=False)

    deliver(created.id)

    got = [(r.event["type"], r.event["data"]["id"]) for r in receiver.requests]
    assert ("article.created", hit) in got
    assert {t for t, _ in got} == {"story.created", "article.created"}
    assert all("sanctions" in r.event["data"]["topics"] for r in receiver.requests)


def test_failures_back_off_pause_after_n_and_resume_loses_nothing(
    database_url: str, receiver: Receiver
) -> None:
    created = subscribe(receiver.url)
    articles = [add_listed_article(n=n) for n in range(3)]
    config = settings(webhook_max_failures=3)
    receiver.status = 500

    first = deliver(created.id, config)
    assert (first.status, first.failed) == ("failed", 1)
    failed = row(created.id)
    assert (failed.consecutive_failures, failed.last_http_status) == (1, 500)
    assert (failed.last_error or "").startswith("HTTP 500")
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at > utcnow()
    assert deliver(created.id, config).status == "busy"  # backing off: not yet
    assert deliver(created.id, config, clock=later()).status == "failed"
    assert deliver(created.id, config, clock=later(7200)).status == "paused"
    listed = {s["id"]: s for s in json.loads(cli("subscriptions", "list", "--json").stdout)}
    assert listed[created.id]["state"] == "paused"
    assert listed[created.id]["consecutive_failures"] == 3
    assert listed[created.id]["lag"] >= 3
    assert deliver(created.id, config, clock=later(99999)).status == "busy"  # paused
    assert len({r.webhook_id for r in receiver.requests}) == 1  # always the first event

    receiver.status = 200
    resumed = operations.resume_subscription(created.id)
    assert (resumed.state, resumed.consecutive_failures) == ("active", 0)
    assert deliver(created.id, config).delivered == 3
    ids = [r.webhook_id for r in receiver.requests]
    assert ids[:4] == [ids[0]] * 4  # the same key every time
    assert [r.event["data"]["id"] for r in receiver.distinct()] == articles


def test_a_stopped_receiver_is_retried_and_nothing_is_lost(
    database_url: str, receiver: Receiver
) -> None:
    created = subscribe(receiver.url)
    articles = [add_listed_article(n=n) for n in range(2)]
    receiver.stop()

    refused = deliver(created.id)
    assert refused.status == "failed"
    assert row(created.id).last_http_status is None
    assert "Connect" in (row(created.id).last_error or "")

    receiver.start()
    assert deliver(created.id, clock=later()).delivered == 2
    assert [r.event["data"]["id"] for r in receiver.distinct()] == articles


def test_a_long_backlog_is_sent_in_runs_that_end_inside_the_time_limit(
    database_url: str, receiver: Receiver
) -> None:
    created = subscribe(receiver.url)
    articles = [add_listed_article(n=n) for n in range(4)]
    receiver.delay = 1.0  # a slow receiver: half the 5 s limit passes after 3 events
    config = settings(task_time_limit=5)

    first = deliver(created.id, config)
    assert (first.status, first.delivered) == ("more", 3)
    assert operations.get_subscription(created.id).lag > 0
    assert deliver(created.id, config).status == "caught_up"
    assert [r.event["data"]["id"] for r in receiver.requests] == articles


def test_two_runs_never_hold_one_subscription(database_url: str) -> None:
    """The lease: one holder at a time; only the holder moves the position; a dead
    holder's lease lapses and the next run takes over."""
    created = subscribe("http://127.0.0.1:9/hook")
    now = utcnow()
    with session_scope() as session:
        assert store.acquire_subscription_lease(
            session, subscription_id=created.id, owner="a", now=now, lease_seconds=30
        )
    with session_scope() as session:
        assert not store.acquire_subscription_lease(
            session, subscription_id=created.id, owner="b", now=now, lease_seconds=30
        )
        assert not store.record_delivery(
            session, subscription_id=created.id, owner="b", position=5, http_status=200,
            now=now, lease_seconds=30,
        )  # fmt: skip
    assert deliver(created.id).status == "busy"
    later_on = now + timedelta(seconds=31)
    with session_scope() as session:
        assert store.acquire_subscription_lease(
            session, subscription_id=created.id, owner="b", now=later_on, lease_seconds=30
        )
    with session_scope() as session:
        assert not store.record_delivery(
            session, subscription_id=created.id, owner="a", position=5, http_status=200,
            now=later_on, lease_seconds=30,
        )  # fmt: skip
    assert row(created.id).position == created.position


# --- the SSRF guard ----------------------------------------------------------------------


def test_internal_addresses_are_refused_at_creation(database_url: str) -> None:
    for url in ("http://10.1.2.3/hook", "http://169.254.169.254/latest", "http://[::1]:80/"):
        with pytest.raises(operations.BadInputError, match="refused"):
            subscribe(url)
    result = cli("subscriptions", "add", "http://192.168.1.1/hook")
    assert result.exit_code == 2
    assert "refused" in result.stderr


def test_internal_addresses_are_refused_at_delivery(database_url: str, receiver: Receiver) -> None:
    """Allowed when made, refused when sent (the guard is checked again each time)."""
    created = subscribe(receiver.url)
    add_listed_article(n=1)

    outcome = deliver(created.id, settings(allow_private_networks=[]))

    assert outcome.status == "failed"
    assert receiver.requests == []
    assert "internal address" in (row(created.id).last_error or "")


# --- API and CLI ----------------------------------------------------------------------


@pytest.fixture
def client(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from worker.api import create_app
    from worker.settings import reset_settings

    monkeypatch.setenv("INGEST_API_TOKEN", TOKEN)
    reset_settings()
    with TestClient(create_app()) as test_client:
        yield test_client


def test_api_round_trip_behind_the_token(client: TestClient, receiver: Receiver) -> None:
    body = {"url": receiver.url, "label": "ukraine-security", "topics": ["sanctions"]}
    assert client.post("/subscriptions", json=body).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert client.post("/subscriptions", json=body, headers=bad).status_code == 403
    assert client.get("/subscriptions").status_code == 401
    assert client.get("/subscriptions", headers=bad).status_code == 403

    made = client.post("/subscriptions", json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["secret"].startswith("whsec_")
    assert (created["state"], created["kinds"], created["lag"]) == ("active", ["article"], 0)
    sid = created["id"]

    listed = client.get("/subscriptions", headers=AUTH).json()
    assert [s["id"] for s in listed] == [sid]
    assert "secret" not in listed[0]
    assert "secret" not in client.get(f"/subscriptions/{sid}", headers=AUTH).json()
    paused = client.post(f"/subscriptions/{sid}/pause", headers=AUTH).json()
    assert paused["state"] == "paused"
    assert paused["paused_at"] is not None
    assert client.post(f"/subscriptions/{sid}/resume", headers=AUTH).json()["state"] == "active"
    assert client.delete(f"/subscriptions/{sid}").status_code == 401
    assert client.delete(f"/subscriptions/{sid}", headers=AUTH).status_code == 204
    assert client.get(f"/subscriptions/{sid}", headers=AUTH).status_code == 404
    assert client.post(f"/subscriptions/{sid}/pause", headers=AUTH).status_code == 404

    internal = client.post("/subscriptions", json={"url": "http://10.0.0.1/x"}, headers=AUTH)
    assert internal.status_code == 400
    assert "refused" in internal.json()["detail"]
    ftp = client.post("/subscriptions", json={"url": "ftp://hooks.example/x"}, headers=AUTH)
    assert ftp.status_code == 422
    topic = client.post(
        "/subscriptions", json={"url": receiver.url, "topics": ["weather"]}, headers=AUTH
    )
    assert topic.status_code == 422


def cli(*args: str) -> Any:
    return runner.invoke(cli_app, list(args))


def test_cli_round_trip(database_url: str, receiver: Receiver) -> None:
    made = cli(
        "subscriptions", "add", receiver.url, "--label", "ukraine-security",
        "--topic", "sanctions", "--topic", "battlefield", "--kinds", "article,story", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["secret"].startswith("whsec_")
    assert created["topics"] == ["sanctions", "battlefield"]
    assert created["kinds"] == ["article", "story"]
    sid = str(created["id"])
    add_listed_article(n=1)

    listed = json.loads(cli("subscriptions", "list", "--json").stdout)
    assert [(s["id"], s["lag"]) for s in listed] == [(created["id"], 2)]  # story + article
    assert "secret" not in listed[0]
    assert json.loads(cli("subscriptions", "pause", sid, "--json").stdout)["state"] == "paused"
    assert json.loads(cli("subscriptions", "resume", sid, "--json").stdout)["state"] == "active"
    table = cli("subscriptions", "list")
    assert table.exit_code == 0
    assert "active" in table.stdout
    assert cli("subscriptions", "remove", sid, "--yes").exit_code == 0
    gone = cli("subscriptions", "pause", sid)
    assert gone.exit_code == 2
    assert "unknown subscription" in gone.stderr
    assert cli("subscriptions", "add", receiver.url, "--topic", "weather").exit_code == 2
    assert cli("subscriptions", "add", receiver.url, "--kinds", "comment").exit_code == 2


def test_stats_and_metrics_show_paused_subscriptions(database_url: str) -> None:
    created = subscribe("http://127.0.0.1:9/hook")
    operations.pause_subscription(created.id)
    from worker.metrics import DatabaseCollector

    gauges = {
        (s.name, s.labels.get("state")): s.value
        for family in DatabaseCollector(operations.totals).collect()
        for s in family.samples
    }
    assert gauges[("ingest_db_subscriptions", "paused")] == 1
    assert gauges[("ingest_db_subscriptions", "active")] == 0
    assert operations.totals()["subscriptions"] == {"paused": 1}
    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["totals"]["subscriptions"] == {"paused": 1}
    assert "1 paused" in cli("stats").stdout


def test_the_database_copy_keeps_subscriptions(sqlite_url: str, tmp_path: Path) -> None:
    created = subscribe("http://127.0.0.1:9/hook", label="ukraine-security")
    add_listed_article(n=1)
    target = f"sqlite:///{tmp_path / 'copy.db'}"

    report = database_ops.copy_database(target)

    assert report.identical
    from worker.db import make_engine

    engine = make_engine(target)
    try:
        with engine.connect() as conn:
            from sqlalchemy import text

            copied = conn.execute(
                text("SELECT url, label, position, secret FROM subscriptions")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(c) for c in copied] == [
        (created.url, "ukraine-security", created.position, created.secret)
    ]


# --- real worker and beat processes ------------------------------------------------------


def _env(database_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    fast = {
        "INGEST_WEBHOOK_INTERVAL_SECONDS": "0.5",
        "INGEST_WEBHOOK_TIMEOUT_SECONDS": "3",
        "INGEST_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
        "INGEST_WEBHOOK_RETRY_MAX_SECONDS": "2",
    }
    return worker_env(database_url, broker_url, **{**fast, **overrides})


def _created_at(article_ids: list[int]) -> dict[int, float]:
    with session_scope() as session:
        return {
            a: session.get(Article, a).created_at.timestamp()  # type: ignore[union-attr]
            for a in article_ids
        }


def test_worker_and_beat_deliver_within_seconds_and_through_an_outage(
    sqlite_url: str, broker_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    created = subscribe(receiver.url, label="ukraine-security")
    with running_celery(_env(sqlite_url, broker_url), tmp_path, beat=True):
        wanted = []
        for n in range(6):
            article = add_listed_article(n=n, positive=n % 3 != 0)
            if n % 3:
                wanted.append(article)
        wait_until(lambda: len(receiver.distinct()) >= 4, timeout=30, what="4 events")
        stored = _created_at(wanted)
        latencies = [r.at - stored[r.event["data"]["id"]] for r in receiver.distinct()]
        assert max(latencies) < 8, latencies

        receiver.stop()  # connection refused for a while
        for n in range(6, 12):
            article = add_listed_article(n=n, positive=n % 3 != 0)
            if n % 3:
                wanted.append(article)
        wait_until(lambda: row(created.id).consecutive_failures >= 2, timeout=30, what="failures")
        receiver.start()
        wait_until(lambda: len(receiver.distinct()) >= 8, timeout=30, what="8 events")
        wait_until(lambda: row(created.id).position >= max_position(), timeout=10)

    events = [r.event for r in receiver.distinct()]
    assert [e["data"]["id"] for e in events] == wanted  # every one, in order
    assert all(verifies(r, created.secret) for r in receiver.requests)
    assert row(created.id).state == "active"


def max_position() -> int:
    with session_scope() as session:
        return store.change_log_bounds(session)[1]


def test_a_worker_killed_mid_delivery_redelivers_the_same_event(
    sqlite_url: str, broker_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    subscribe(receiver.url)
    receiver.delay = 2.5  # the first answer is held back: the worker dies waiting
    env = _env(sqlite_url, broker_url, INGEST_WEBHOOK_TIMEOUT_SECONDS="4")
    replacement = None
    try:
        with running_celery(env, tmp_path, beat=True) as celery:
            first = add_listed_article(n=1)
            wait_until(lambda: receiver.requests, timeout=30, what="the first request")
            celery.worker.kill()
            receiver.delay = 0
            rest = [add_listed_article(n=n) for n in range(2, 5)]
            replacement = services.start_celery("worker", env, workdir=tmp_path)
            wait_ready(replacement)
            wait_until(lambda: len(receiver.distinct()) >= 4, timeout=60, what="4 events")
    finally:
        if replacement is not None:
            replacement.stop()

    ids = [r.webhook_id for r in receiver.requests]
    in_flight = ids[0]
    assert ids.count(in_flight) >= 2  # sent again, with the same key
    assert [r.event["data"]["id"] for r in receiver.distinct()] == [first, *rest]
    assert len(set(ids)) == 4  # nothing missing, nothing else repeated under a new key
