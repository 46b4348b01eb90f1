"""Webhook events, pure: which changes a subscription wants, the event each becomes,
how it is signed, and how long to wait after a failure.

Signing follows the Standard Webhooks specification (standardwebhooks.com), which
Svix and the ``standardwebhooks`` libraries implement, so a consumer can verify with
an off-the-shelf library instead of code of its own: the secret is ``whsec_`` and the
base64 of 32 random bytes; each request carries ``webhook-id`` (the idempotency key),
``webhook-timestamp`` (Unix seconds, so a receiver can refuse replays) and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.

Delivery itself (lease, order, retries) is :mod:`worker.pipeline.webhooks`; the HTTP
POST is :func:`worker.fetch.post_webhook`. No I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32

EVENT_OPS = {"insert": "created", "update": "updated", "delete": "deleted"}
"""A change's op as the event type's verb: ``article.created`` and so on."""


def new_secret() -> str:
    """A fresh signing secret, in the Standard Webhooks form (``whsec_<base64>``)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for (its base64-decoded bytes)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one request."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a delivery carries besides the transport's own."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def event_id(subscription_id: int, position: int) -> str:
    """The idempotency key: the same for every attempt at one change for one subscriber
    (a redelivery after a crash or a failure repeats it; another change never does)."""
    return f"{subscription_id}-{position}"


@dataclass(frozen=True)
class Filter:
    """What a subscription wants: changes of ``kinds`` whose row has ``label`` (when set)
    and any of ``topics`` (when any)."""

    kinds: Sequence[str]
    label: str | None = None
    topics: Sequence[str] = ()

    @property
    def narrowed(self) -> bool:
        return self.label is not None or bool(self.topics)


def matches(wanted: Filter, kind: str, row: dict[str, Any] | None) -> bool:
    """Whether a change of ``kind`` whose row is now ``row`` (None: deleted) is wanted.

    Label and topics are read from the row as it is now: an article relabelled
    ``ukraine-security`` by a reclassification arrives then, as ``article.updated``.
    Feeds have neither, and a deleted row's are unknown, so a subscription that filters
    by them gets neither.
    """
    if kind not in wanted.kinds:
        return False
    if not wanted.narrowed:
        return True
    if row is None or kind == "feed":
        return False
    if wanted.label is not None and row.get("label") != wanted.label:
        return False
    return not wanted.topics or bool(set(wanted.topics) & set(row.get("topics") or ()))


def event_type(kind: str, op: str, row: dict[str, Any] | None) -> str:
    """``article.created`` etc.; a change whose row no longer exists is a deletion."""
    return f"{kind}.{'deleted' if row is None else EVENT_OPS[op]}"


def event_body(
    *,
    subscription_id: int,
    position: int,
    kind: str,
    entity_id: int,
    op: str,
    occurred_at: datetime,
    row: dict[str, Any] | None,
) -> bytes:
    """The JSON a subscriber receives for one change: the row as it is now (the change
    feed's ``row``), or only its id once deleted."""
    body = {
        "id": event_id(subscription_id, position),
        "type": event_type(kind, op, row),
        "position": position,
        "occurred_at": occurred_at.isoformat(),
        "data": row if row is not None else {"id": entity_id},
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def backoff_seconds(failures: int, *, base: float, maximum: float) -> float:
    """How long to wait after the ``failures``-th failure in a row: exponential from
    ``base``, at most ``maximum``, with full jitter over the upper half (so many
    subscribers of one dead receiver do not come back in step)."""
    ceiling = min(maximum, base * 2 ** max(0, failures - 1))
    return random.uniform(ceiling / 2, ceiling)
