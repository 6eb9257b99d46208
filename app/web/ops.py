"""Operational endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, or_, select

from app import metrics
from app.db import utcnow
from app.delivery import queue
from app.migrate import current_revision
from app.models import Delivery, Issue

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
    since = utcnow() - timedelta(seconds=60)
    # Restricted to issues still sending or just finished, so the (issue, status) index
    # serves it rather than a scan of every delivery ever made.
    active = select(Issue.id).where(
        or_(Issue.status.in_(("sending", "paused")), Issue.finished_at >= since)
    )
    async with request.app.state.sessionmaker() as session:
        depth = await queue.queue_depth(session=session)
        recent = await session.scalar(
            select(func.count()).where(
                Delivery.issue_id.in_(active), Delivery.status == "sent", Delivery.sent_at >= since
            )
        )
    metrics.queue_depth.set(depth)
    metrics.send_rate.set((recent or 0) / 60)
