"""`GET /metrics`: Prometheus exposition of rise-serve's collectors."""

from fastapi import APIRouter
from fastapi.responses import Response

from app import metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_route() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
