"""The API against hostile callers: schemathesis fuzzes every operation of the OpenAPI
schema against a real `ingest api` process, on SQLite and PostgreSQL, with no token, a
wrong token and the right one; then the limits a fuzzer would not find by itself.

Invariants: no 5xx, every answer as the schema documents it (status, content type,
body), no data change without the right token, the token never in a log or an answer,
bounded bodies and query strings, and a 400 (never a 500) for a tampered cursor.

Bounded for CI: ``INGEST_FUZZ_EXAMPLES`` examples per operation and mode (default 5);
the longer run documented in docs/reliability.md ("API fuzzing") raises it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from sqlalchemy import inspect, text

from tests.support import services
from tests.support.factories import add_feed, add_listed_article
from worker.api.cursors import MAX_ID, encode_cursor
from worker.api.params import MAX_POSITION
from worker.search import QueryError, is_blank, parse_query

pytestmark = pytest.mark.integration

TOKEN = f"fuzz-token-{uuid.uuid4().hex}"
"""Unique to this run: finding it in a log or an answer can only mean it leaked."""
WRONG = "fuzz-wrong-token"
CI_EXAMPLES = 5
EXAMPLES = int(os.environ.get("INGEST_FUZZ_EXAMPLES", str(CI_EXAMPLES)))
LONG = EXAMPLES > CI_EXAMPLES
"""A long run: the coverage phase with every token (in CI only with the right one), and
every method a path does not take sent to it (in CI only PATCH) to check the 405."""
METHODS = ["get", "put", "post", "delete", "options", "patch", "trace"] if LONG else ["patch"]
COVERAGE_DATABASES = ["sqlite", "postgres"] if LONG else ["postgres"]
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOOK = "http://127.0.0.1:9/hook"
"""A subscriber URL the server accepts (loopback is allowed in these tests) and never
calls (no beat runs): positive subscription bodies get it, see :func:`_meaningful`."""


@dataclass
class RunningApi:
    database: str
    base_url: str
    database_url: str
    redis_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    client: httpx.Client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)


def _seed() -> None:
    """Feeds, articles and stories for the listings to page through."""
    feeds = [add_feed(name=name) for name in ("kyiv", "other")]
    for n in range(6):
        add_listed_article(
            n=n,
            feed_id=feeds[n % 2],
            positive=n < 4,
            topics=["battlefield"] if n < 3 else [],
            published_at=None if n == 5 else T0 + timedelta(hours=n),
        )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApi]:
    """`ingest api` (the container's command) over a seeded database, with a
    redis-server of its own as the broker, so /health is ok and POST /recrawl enqueues."""
    from worker import migrate
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    workdir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'fuzz.db'}"
    else:
        server: services.PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"fuzz_{uuid.uuid4().hex[:12]}")
    broker = services.start_redis()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_DATABASE_URL", url)
        reset_settings()
        dispose_engines()
        migrate.upgrade(url)
        _seed()
        port = services.free_port()
        env = {
            **os.environ,
            "INGEST_DATABASE_URL": url,
            "INGEST_BROKER_URL": broker.url,
            "INGEST_API_TOKEN": TOKEN,
            "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            "INGEST_LOG_LEVEL": "DEBUG",  # the most the server would ever log
        }
        log_path = workdir / "api.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "api", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=services.REPO_ROOT,
            )
        base_url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base_url, timeout=30)
        try:
            services.wait_for_port(port, timeout=30)
            yield RunningApi(request.param, base_url, url, broker.url, log_path, process, client)
        finally:
            client.close()
            process.terminate()
            process.wait(timeout=20)
            broker.stop()
            dispose_engines()
            _report(request.param)
    reset_settings()
    dispose_engines()


def _report(database: str) -> None:
    """With ``INGEST_FUZZ_REPORT=path``, append what the fuzz sent to this database as
    one JSON line: the figures docs/reliability.md records for a long run."""
    path = os.environ.get("INGEST_FUZZ_REPORT")
    if not path:
        return
    sent = {key: n for key, n in SENT.items() if key[0] == database}
    by_run: Counter[str] = Counter()
    by_operation: Counter[str] = Counter()
    for (_, token, phase, operation), n in sent.items():
        by_run[f"{token}/{phase}"] += n
        by_operation[operation] += n
    line = {
        "database": database,
        "examples": EXAMPLES,
        "operations": len(by_operation),
        "requests": sum(sent.values()),
        "by_run": dict(sorted(by_run.items())),
        "by_operation": dict(by_operation.most_common()),
    }
    with open(path, "a") as report:
        report.write(json.dumps(line) + "\n")


# --- the schemathesis run ----------------------------------------------------------------


def _published_schema() -> dict[str, Any]:
    """The schema `ingest api` serves with a token configured (what the fuzz server runs);
    test_the_server_publishes_the_fuzzed_schema checks the server serves this one."""
    from worker.api import create_app
    from worker.settings import Settings

    return create_app(Settings(api_token=TOKEN)).openapi()


REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428",
            "429", "5xx"]  # fmt: skip
"""What an invalid request may get: schemathesis' list, plus the limits' 413 and 414 (a
5xx is in it because not_a_server_error fails those on its own)."""


def _schema(token: str | None, *, fuzzing: bool = True, coverage: bool = LONG) -> Any:
    """The published schema, for a run that presents ``token`` (None: no header at all).

    Loaded when the module is (schemathesis parametrizes at collection; its lazy pytest
    loader does not run under pytest 9). Schemathesis sends the token itself, so the
    cases it makes to probe auth (the header missing or wrong) stay what they are.
    ``fuzzing``: random cases (``EXAMPLES`` per operation), valid and invalid.
    ``coverage``: every boundary and every kind of invalid value of each parameter,
    deterministic (about 670 requests).
    """
    config: dict[str, Any] = {
        "seed": 22,  # the same cases every run: a CI failure reproduces
        "phases": {
            "stateful": {"enabled": False},
            "fuzzing": {"enabled": fuzzing},
            "coverage": {"enabled": coverage, "unexpected-methods": METHODS},
        },
        "generation": {"max-examples": EXAMPLES, "with-security-parameters": token is not None},
        # A refusal by the limits (413, 414) is a refusal too.
        "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
    }
    if token is not None:
        config["auth"] = {"openapi": {"HTTPBearer": {"bearer": token}}}
    return schemathesis.openapi.from_dict(
        _published_schema(), config=SchemathesisConfig.from_dict(config)
    )


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.fixture
def unchanged(api: RunningApi) -> Iterator[None]:
    """Without the right token no table and no Redis key may change."""
    before = _snapshot(api)
    yield
    assert _snapshot(api) == before, "data changed without a valid token"


def _snapshot(api: RunningApi) -> dict[str, Any]:
    """Each table's row count and a checksum of its rows, and Redis's key count.

    The change feed's numbering is settled first: a read of ``/changes`` numbers the
    changes earlier writes logged, which is bookkeeping, not a change of data.
    """
    from worker import changefeed
    from worker.db import get_engine

    changefeed.sequence_pending()
    state: dict[str, Any] = {}
    engine = get_engine(api.database_url)
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
            state[table] = (len(rows), digest)
    client = redis.Redis.from_url(api.redis_url)
    try:
        state["redis keys"] = client.dbsize()
    finally:
        client.close()
    return state


def _meaningful(case: Any) -> None:
    """Keep a schema-valid (positive) case valid in what the schema cannot say.

    A cursor is valid only as the server issued it, a search only with a word in it,
    ``sort=relevance`` only with a search, a change-feed position only up to the log's
    end, and a subscriber only at an address the SSRF guard lets through: a fuzzer
    drawing these from the schema alone gets the (correct) 400 or 410 and calls it a
    rejected valid request. Those
    refusals are asserted on their own below (cursors, positions) and in test_api.py;
    negative cases are left as drawn.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    query = case.query if isinstance(case.query, dict) else None
    if query is not None:
        query.pop("cursor", None)
        if _refused_search(query.get("q")):
            query.pop("q")
        if query.get("sort") == "relevance" and is_blank(query.get("q")):
            query.pop("sort")
        if case.path == "/changes" and str(query.get("after", "")).isdigit():
            query["after"] = min(int(query["after"]), 10)  # the seeded log holds more
    if case.path == "/subscriptions" and isinstance(case.body, dict):
        case.body["url"] = HOOK


SENT: Counter[tuple[str, str, str, str]] = Counter()
"""Requests the fuzz sent, by database, token, schemathesis phase and operation (for
the report of a long run, :func:`_report`)."""


def _refused_search(text: Any) -> bool:
    """Whether the search refuses ``text`` (no word in it, only negations: its own rules,
    docs/operations.md "Searching articles")."""
    try:
        parse_query(text if isinstance(text, str) else None)
    except QueryError:
        return True
    return False


def _call(case: Any, api: RunningApi, token: str) -> None:
    phase = case.meta.phase.name if case.meta else "?"
    SENT[(api.database, token, phase, case.operation.label)] += 1
    _meaningful(case)
    response = case.call_and_validate(base_url=api.base_url, timeout=30)
    assert TOKEN not in response.text


@_schema(None).parametrize()
@FUZZ
def test_fuzz_without_token(case: Any, api: RunningApi, unchanged: None) -> None:
    """Every operation, no Authorization header: no 5xx, every answer as documented
    (status, content type, headers, body), valid input accepted and invalid refused,
    reads open and writes 401, and no data changed."""
    _call(case, api, "no token")


@_schema(WRONG).parametrize()
@FUZZ
def test_fuzz_with_a_wrong_token(case: Any, api: RunningApi, unchanged: None) -> None:
    """As without a token, the writes answering 403."""
    _call(case, api, "wrong token")


@_schema(TOKEN, coverage=False).parametrize()
@FUZZ
def test_fuzz_with_the_token(case: Any, api: RunningApi) -> None:
    """Writes happen; schemathesis also checks each one refuses the same request
    without the token (ignored_auth)."""
    _call(case, api, "token")


@_schema(TOKEN, fuzzing=False, coverage=True).parametrize()
@pytest.mark.parametrize("api", COVERAGE_DATABASES, indirect=True)
@FUZZ
def test_boundaries_with_the_token(case: Any, api: RunningApi) -> None:
    """Every boundary and every kind of invalid value of each parameter, with the
    token (the reads answer the same to all three tokens, and the writes only 401 or
    403 to the other two, which their random cases show). In CI on PostgreSQL, the
    stricter database (32-bit ids, no NUL in text); a long run does both."""
    _call(case, api, "token")


def test_the_server_publishes_the_fuzzed_schema(api: RunningApi) -> None:
    assert api.get("/openapi.json").json() == json.loads(json.dumps(_published_schema()))


# --- cursors -----------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TAMPERED = {
    "not base64": "%%%not-base64%%%",
    "base64 garbage": _b64(b"\xff\xfe\x00garbage"),
    "json object": _b64(b'{"a": 1}'),
    "json scalar": _b64(b"42"),
    "truncated json": _b64(b'["published", "2026-05-01T12:00:00'),
    "empty list": encode_cursor(),
    "id past 64 bits": encode_cursor("id", "2026-05-01T12:00:00+00:00", 2**70),
    "id past 32 bits": encode_cursor("id", "2026-05-01T12:00:00+00:00", MAX_ID + 1),
    "negative id": encode_cursor("id", "2026-05-01T12:00:00+00:00", -1),
    "bool id": encode_cursor("id", "2026-05-01T12:00:00+00:00", True),
    "float id": encode_cursor("published", None, 1.5),
    "time not a time": encode_cursor("published", "yesterday", 3),
    "time off the calendar in UTC": encode_cursor("published", "0001-01-01T00:00:00+05:00", 3),
    "NaN rank": _b64(b'["relevance", NaN, 3]'),
    "infinite rank": _b64(b'["relevance", Infinity, 3]'),
    "story id past 64 bits": encode_cursor("story", 2**70),
    "story id past 32 bits": encode_cursor("story", MAX_ID + 1),
    "story bool id": encode_cursor("story", True),
    "story negative id": encode_cursor("story", -5),
    "story cursor of another kind": encode_cursor("story", "7"),
}


def _real_cursor(api: RunningApi, path: str, **params: Any) -> str:
    page = api.get(path, params={"limit": 1, **params}).json()
    assert page["next_cursor"], page
    cursor: str = page["next_cursor"]
    return cursor


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_tampered_cursors_are_refused(api: RunningApi, name: str) -> None:
    """Every paged listing answers 400 to a cursor it did not issue (of this kind or
    sort), never a 500."""
    cursor = TAMPERED[name]
    for path, params in [
        ("/articles", {}),
        ("/articles", {"sort": "id"}),
        ("/articles", {"sort": "relevance", "q": "article"}),
        ("/stories", {}),
    ]:
        response = api.get(path, params={**params, "cursor": cursor})
        assert response.status_code == 400, (path, params, response.text)
        assert "cursor" in response.json()["detail"]


def test_cursors_of_another_listing_or_sort_are_refused(api: RunningApi) -> None:
    by_time = _real_cursor(api, "/articles")
    by_id = _real_cursor(api, "/articles", sort="id")
    ranked = _real_cursor(api, "/articles", q="article")
    story = _real_cursor(api, "/stories")
    for path, params, cursor in [
        ("/articles", {"sort": "id"}, by_time),
        ("/articles", {}, by_id),
        ("/articles", {}, ranked),
        ("/articles", {"q": "article"}, by_id),
        ("/articles", {}, story),
        ("/stories", {}, by_time),
    ]:
        response = api.get(path, params={**params, "cursor": cursor})
        assert response.status_code == 400, (path, params, response.text)
    # The real ones still page.
    assert api.get("/articles", params={"cursor": by_time}).status_code == 200
    assert api.get("/stories", params={"cursor": story}).status_code == 200


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["published", "id", "relevance", "story", "9999-12-31T23:59:59-05:00"]),
    lambda children: st.lists(children, max_size=4),
    max_leaves=6,
)


@settings(
    max_examples=EXAMPLES * 4,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
@given(
    cursor=st.one_of(
        st.text(max_size=60),
        st.binary(max_size=60).map(_b64),
        json_values.map(lambda v: _b64(json.dumps(v).encode())),
    ),
    listing=st.sampled_from(["/articles", "/articles?sort=id", "/stories"]),
)
def test_any_cursor_is_a_page_or_a_400(api: RunningApi, cursor: str, listing: str) -> None:
    """Whatever a cursor holds, the listing answers a page (if it happens to be a key
    the listing can use) or 400; /changes pages by position, bounded (422 past 64 bits,
    410 past the log's end)."""
    path, _, query = listing.partition("?")
    params = dict(p.split("=") for p in query.split("&") if p)
    response = api.get(path, params={**params, "cursor": cursor})
    assert response.status_code in (200, 400), response.text


def test_change_positions_are_bounded(api: RunningApi) -> None:
    assert api.get("/changes", params={"after": MAX_POSITION + 1}).status_code == 422
    beyond = api.get("/changes", params={"after": MAX_POSITION})
    assert beyond.status_code == 410
    assert beyond.json()["reason"] == "ahead"
    assert api.get("/changes", params={"after": -1}).status_code == 422


# --- bounded requests ---------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


@pytest.mark.parametrize("auth", [None, TOKEN], ids=["no-token", "token"])
@pytest.mark.parametrize("path", ["/feeds", "/recrawl", "/subscriptions"])
def test_a_huge_body_is_refused_unread(api: RunningApi, path: str, auth: str | None) -> None:
    """10 MB of JSON to a write endpoint: 413 at once, whether its length is declared or
    it streams (chunked), and the server does not grow by what it was sent."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    body = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    rss_before = _rss_kib(api.process.pid)
    started = time.monotonic()
    declared = api.client.post(path, content=body, headers=headers, timeout=30)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = api.client.post(path, content=chunks(), headers=headers, timeout=30)
    elapsed = time.monotonic() - started
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:200]
        assert "larger than" in response.json()["detail"]
    assert elapsed < 10, f"{elapsed:.1f}s to refuse two 10 MB bodies"
    assert _rss_kib(api.process.pid) - rss_before < 8 * 1024, "the server read the body"


def test_over_long_query_strings_and_parameters_are_refused(api: RunningApi) -> None:
    assert api.get("/articles", params={"topic": "x" * 101}).status_code == 422
    assert api.get("/articles", params={"feed": "x" * 201}).status_code == 422
    assert api.get("/articles", params={"language": "x" * 17}).status_code == 422
    assert api.get("/articles", params={"cursor": "x" * 1025}).status_code == 422
    assert api.get("/articles", params={"q": "word " * 101}).status_code == 400
    assert api.get("/articles", params={"q": " " * 501}).status_code == 400
    # Ids are 32-bit on PostgreSQL: one past that is a 422, not the driver's 500.
    for path in ("/articles", "/stories", "/crawl-requests"):
        assert api.get(f"{path}/{MAX_ID}").status_code == 404
        assert api.get(f"{path}/{MAX_ID + 1}").status_code == 422
    assert api.get("/articles", params={"story_id": MAX_ID + 1}).status_code == 422
    assert api.get("/stories", params={"min_articles": MAX_ID + 1}).status_code == 422
    assert api.get("/articles", params={"story_id": MAX_ID}).json()["items"] == []
    # Many short parameters, one long query string: 414 before any route runs.
    many = "&".join(f"topic={n}" for n in range(3000))
    assert api.get(f"/articles?{many}").status_code == 414
    # Longer than the server reads as a request line at all: still a 4xx, never a 5xx.
    assert 400 <= _raw_status(api, f"/articles?topic={'x' * 100_000}") < 500
    assert api.get("/health").status_code == 200


def _raw_status(api: RunningApi, target: str) -> int:
    """The status of a GET of ``target`` sent as raw HTTP/1.1 (an HTTP client refuses
    to send a URL this long)."""
    port = int(api.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/articles", {"since": "1714564800"}),
        ("/articles", {"topic": "a\x00b"}),
        ("/articles", {"feed": "\x00"}),
    ],
)
def test_values_no_database_can_take_are_422(
    api: RunningApi, path: str, params: dict[str, str]
) -> None:
    """Regression tests of what the fuzz found: a NUL PostgreSQL cannot store, a
    number read as seconds since 1970."""
    response = api.get(path, params=params)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("path", "params", "found"),
    [
        ("/articles", {"since": "0001-01-01T00:00:00+05:00"}, 6),
        ("/articles", {"until": "9999-12-31T23:59:59-05:00"}, 6),
        ("/stories", {"until": "0001-01-01T01:00:12+12:00"}, 0),
    ],
)
def test_times_past_utcs_calendar_are_its_edges(
    api: RunningApi, path: str, params: dict[str, str], found: int
) -> None:
    """Found by the fuzz: a valid RFC 3339 time UTC cannot hold failed in the driver
    (a 500); as a bound it is the first or last time UTC holds."""
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == found


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/feeds", {"name": "n", "url": "https://n.example/rss", "tags": ["a\x00"]}),
        ("/feeds", {"name": "n", "url": "https://n.example/rss", "language": "\ud800"}),
        ("/feeds", {"name": "n", "url": "https://n.example/rss\x00"}),
        ("/feeds", {"name": "n", "url": "https://n.example/rss", "poll_interval_seconds": 2**40}),
        ("/feeds", {"name": "n", "url": "https://n.example/rss", "enabled": 0}),
        ("/feeds", {"name": "n", "url": "https://n.example/rss", "poll_interval_seconds": "60"}),
        ("/feeds", {"name": "n", "url": "http://[::1/rss"}),
        ("/recrawl", {"since": 0}),
        ("/recrawl", {"feed": "kyiv\x00"}),
        ("/recrawl", {"url": "https://n.example/a", "force": "yes"}),
        ("/subscriptions", {"url": HOOK, "topics": ["not-a-topic"]}),
    ],
)
def test_bodies_no_database_can_take_are_422(
    api: RunningApi, path: str, body: dict[str, Any]
) -> None:
    response = api.client.post(
        path,
        content=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422, response.text


def test_a_feed_cannot_take_another_feeds_url(api: RunningApi) -> None:
    """Found by the fuzz: renaming a feed's URL to another feed's was a unique-constraint
    violation, a 500; it is a 409 naming the feed that has it, and nothing changes."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    taken = api.client.post(
        "/feeds", json={"name": "kyiv", "url": "https://other.example/rss"}, headers=auth
    )
    assert taken.status_code == 409, taken.text
    assert "'other'" in taken.json()["detail"]
    kyiv = next(f for f in api.get("/feeds").json() if f["name"] == "kyiv")
    assert kyiv["url"] == "https://kyiv.example/rss"


def test_405_names_every_method_of_the_path(api: RunningApi) -> None:
    """GET and POST /feeds are on different routers; the 405 must still name both."""
    response = api.client.request("PUT", "/feeds")
    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}


# --- the token ------------------------------------------------------------------------------


def test_the_token_is_compared_in_constant_time(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every presented token goes through hmac.compare_digest, whose time does not depend
    on how much of a guess matched; a wrong token of the right length is refused too."""
    from worker.api import create_app, deps
    from worker.settings import Settings

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    guesses = [TOKEN[:-1] + "x", "short", TOKEN]
    # In this process (the spy must see the comparison), on the database the server has.
    with TestClient(create_app(Settings(api_token=TOKEN, database_url=api.database_url))) as client:
        statuses = [
            client.post("/feeds/none/disable", headers={"Authorization": f"Bearer {guess}"})
            for guess in guesses
        ]
    assert [r.status_code for r in statuses] == [403, 403, 404]
    assert compared == [(g.encode(), TOKEN.encode()) for g in guesses]


def test_the_token_is_never_logged_nor_echoed(api: RunningApi) -> None:
    """Requests with the token that end in every kind of refusal; then the server's whole
    output (stdout and stderr, at DEBUG, the fuzz runs before this test included) holds
    neither the token nor a traceback."""
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    answers = [
        api.client.post("/feeds", content=b"{not json", headers=auth),
        api.client.post("/feeds", content=json.dumps({"name": "n"}), headers=auth),
        api.client.post("/recrawl", content=json.dumps({"feed": "nope"}), headers=auth),
        api.client.post("/feeds/nope/disable", headers=auth),
        api.client.get("/articles", params={"cursor": "nope"}, headers=auth),
        api.client.get("/subscriptions/0", headers=auth),
        api.client.post("/feeds", content=b"x" * 200_000, headers=auth),
        api.client.post(
            "/feeds",
            content=b"{}",
            headers={"Authorization": f"Bearer {TOKEN}x", "Content-Type": "application/json"},
        ),
    ]
    assert [a.status_code for a in answers] == [422, 422, 404, 404, 400, 404, 413, 403]
    for answer in answers:
        assert TOKEN not in answer.text
    log = api.log()
    assert TOKEN not in log
    assert "Traceback" not in log
    assert "Application startup complete." in log
