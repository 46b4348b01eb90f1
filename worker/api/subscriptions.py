"""``/subscriptions``: webhook subscribers of the change feed. Every route needs the API
token, reads included: a subscription names where events go and how it is doing."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from .. import operations
from ..schemas import SubscriptionCreated, SubscriptionIn, SubscriptionOut
from .params import RowId
from .responses import BAD_INPUT, NOT_FOUND

writes = APIRouter()


@writes.post(
    "/subscriptions",
    response_model=SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    responses=BAD_INPUT,  # a URL the SSRF guard refuses; a body that is not UTF-8 JSON
)
def add_subscription(body: SubscriptionIn) -> SubscriptionCreated:
    """Subscribe a URL to new changes; the answer holds the signing secret, shown once."""
    return operations.add_subscription(body)


@writes.get("/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions() -> list[SubscriptionOut]:
    """Every subscription with its state, failures and lag."""
    return operations.list_subscriptions()


@writes.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut, responses=NOT_FOUND)
def get_subscription(subscription_id: RowId) -> SubscriptionOut:
    return operations.get_subscription(subscription_id)


@writes.post(
    "/subscriptions/{subscription_id}/pause", response_model=SubscriptionOut, responses=NOT_FOUND
)
def pause_subscription(subscription_id: RowId) -> SubscriptionOut:
    """Stop delivering; nothing is lost."""
    return operations.pause_subscription(subscription_id)


@writes.post(
    "/subscriptions/{subscription_id}/resume", response_model=SubscriptionOut, responses=NOT_FOUND
)
def resume_subscription(subscription_id: RowId) -> SubscriptionOut:
    """Deliver again from where delivery stopped."""
    return operations.resume_subscription(subscription_id)


@writes.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
def delete_subscription(subscription_id: RowId) -> Response:
    operations.remove_subscription(subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
