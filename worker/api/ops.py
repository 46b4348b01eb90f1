"""``/health`` and ``/metrics``: for probes and Prometheus, never behind the token."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from prometheus_client import CollectorRegistry

from .. import metrics, operations
from ..schemas import Health

router = APIRouter()


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database or the broker is down."}},
)
def health(response: Response) -> Health:
    """200 when the database and the broker answer, else 503 with what is down."""
    report = operations.health()
    if report.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report


@router.get("/metrics", response_class=Response)
def prometheus_metrics() -> Response:
    """Prometheus text format: request counters and live database gauges."""
    database = CollectorRegistry()
    database.register(metrics.DatabaseCollector(operations.totals))
    body, content_type = metrics.render(metrics.collecting_registry(), database)
    return Response(content=body, media_type=content_type)
