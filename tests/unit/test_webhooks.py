"""Webhook events, pure: the signature is the Standard Webhooks one, the body has the
documented shape, filters pick the right changes, and the backoff grows and is capped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from tests.support.receiver import reference_signature
from worker import webhooks
from worker.schemas import SubscriptionIn

WHEN = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_secret_is_whsec_and_32_random_bytes() -> None:
    """The secret is in the form Standard Webhooks libraries take as they are."""
    first, second = webhooks.new_secret(), webhooks.new_secret()
    assert first.startswith("whsec_")
    assert first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_signature_matches_the_reference_algorithm() -> None:
    """base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), with v1, in front."""
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"id":"7-42","type":"article.created"}'
    signature = webhooks.sign(secret, msg_id="7-42", timestamp=1_700_000_000, body=body)
    mac = hmac.new(b"k" * 32, b"7-42.1700000000." + body, hashlib.sha256).digest()
    assert signature == "v1," + base64.b64encode(mac).decode()
    assert signature == reference_signature(secret, "7-42", "1700000000", body)


def test_headers_carry_id_timestamp_and_signature() -> None:
    secret = webhooks.new_secret()
    headers = webhooks.headers(secret, msg_id="3-9", timestamp=1_700_000_001, body=b"{}")
    assert headers["webhook-id"] == "3-9"
    assert headers["webhook-timestamp"] == "1700000001"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"] == reference_signature(secret, "3-9", "1700000001", b"{}")


def test_event_body_shape() -> None:
    row = {"id": 5, "title": "t", "label": "ukraine-security", "topics": ["battlefield"]}
    body = json.loads(
        webhooks.event_body(
            subscription_id=2, position=40, kind="article", entity_id=5, op="insert",
            occurred_at=WHEN, row=row,
        )
    )  # fmt: skip
    assert body == {
        "id": "2-40",
        "type": "article.created",
        "position": 40,
        "occurred_at": WHEN.isoformat(),
        "data": row,
    }


def test_a_gone_row_is_a_deletion_with_its_id() -> None:
    body = json.loads(
        webhooks.event_body(
            subscription_id=1, position=3, kind="story", entity_id=8, op="update",
            occurred_at=WHEN, row=None,
        )
    )  # fmt: skip
    assert (body["type"], body["data"]) == ("story.deleted", {"id": 8})


def test_the_event_id_is_stable_per_subscription_and_position() -> None:
    assert webhooks.event_id(4, 10) == webhooks.event_id(4, 10) == "4-10"
    assert webhooks.event_id(4, 11) != webhooks.event_id(5, 10)


@pytest.mark.parametrize(
    ("wanted", "kind", "row", "expected"),
    [
        (webhooks.Filter(kinds=("article",)), "article", {"label": "other"}, True),
        (webhooks.Filter(kinds=("article",)), "story", {"label": "other"}, False),
        (webhooks.Filter(kinds=("article",)), "article", None, True),
        (webhooks.Filter(("article",), label="ukraine-security"), "article",
         {"label": "ukraine-security", "topics": []}, True),
        (webhooks.Filter(("article",), label="ukraine-security"), "article",
         {"label": "other", "topics": []}, False),
        (webhooks.Filter(("article",), label="ukraine-security"), "article", None, False),
        (webhooks.Filter(("article", "story"), topics=("sanctions", "battlefield")), "story",
         {"label": "other", "topics": ["battlefield"]}, True),
        (webhooks.Filter(("article",), topics=("sanctions",)), "article",
         {"label": "other", "topics": ["battlefield"]}, False),
        (webhooks.Filter(("article",), "ukraine-security", ("sanctions",)), "article",
         {"label": "ukraine-security", "topics": ["sanctions"]}, True),
        (webhooks.Filter(("feed",)), "feed", {"name": "kyiv"}, True),
        (webhooks.Filter(("feed",), label="ukraine-security"), "feed", {"name": "kyiv"}, False),
    ],
)  # fmt: skip
def test_filter_matching(
    wanted: webhooks.Filter, kind: str, row: dict[str, object] | None, expected: bool
) -> None:
    assert webhooks.matches(wanted, kind, row) is expected


def test_backoff_doubles_and_is_capped() -> None:
    for failures, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        wait = webhooks.backoff_seconds(failures, base=2.0, maximum=60.0)
        assert ceiling / 2 <= wait <= ceiling


def test_subscription_input_is_checked() -> None:
    spec = SubscriptionIn(url="https://hooks.example/in", topics=["sanctions", "sanctions"])
    assert (spec.kinds, spec.topics, spec.label) == (["article"], ["sanctions"], None)
    for bad in (
        {"url": "ftp://hooks.example/in"},
        {"url": "https://hooks.example/in", "topics": ["weather"]},
        {"url": "https://hooks.example/in", "kinds": ["comment"]},
        {"url": "https://hooks.example/in", "kinds": []},
        {"url": "https://hooks.example/in", "label": "maybe"},
    ):
        with pytest.raises(ValidationError):
            SubscriptionIn(**bad)  # type: ignore[arg-type]
