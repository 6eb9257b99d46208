"""Operational endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.delivery import queue
from app.migrate import current_revision

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The database answers and is at the latest migration; 503 otherwise, within 3 s."""
    state = request.app.state
    try:
        revision = await asyncio.wait_for(current_revision(state.engine), timeout=3)
    except Exception as exc:  # noqa: BLE001 (any failure means "not ready")
        return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, 503)
    if revision != state.head_revision:
        return JSONResponse(
            {"status": "unmigrated", "detail": f"at {revision}, expected {state.head_revision}"},
            503,
        )
    return JSONResponse({"status": "ready", "revision": revision})


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus(request: Request) -> Response:
    """Prometheus text format."""
    try:
        await asyncio.wait_for(_refresh_gauges(request), timeout=3)
    except Exception:  # noqa: BLE001,S110 (a database outage must not break scraping the rest)
        pass
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _refresh_gauges(request: Request) -> None:
    # The one writer of both gauges: read from the database, so they count every worker
    # (dispatchers have no HTTP endpoint; per-process figures would be each worker's own).
    async with request.app.state.sessionmaker() as session:
        depth = await queue.queue_depth(session=session)
        rate = await queue.sent_per_second(session=session)
    metrics.queue_depth.set(depth)
    metrics.send_rate.set(rate)
