"""Operational endpoints and the app's guards."""

from __future__ import annotations

from tests.conftest import AppClient


async def test_healthz_and_readyz(client: AppClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_readyz_503_when_database_unreachable(app_factory) -> None:  # type: ignore[no-untyped-def]
    client = await app_factory(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    response = await client.get("/readyz")
    assert response.status_code == 503


async def test_metrics_exposes_http_and_queue(client: AppClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'tidings_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "tidings_queue_depth" in text
    assert "tidings_messages_total" in text or "tidings_send_rate" in text


async def test_openapi_docs_served(client: AppClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Tidings"


async def test_oversized_body_refused_with_413(client: AppClient) -> None:
    big = b"x" * (client.app.state.settings.max_body_bytes + 1)
    response = await client.post(
        "/api/v1/lists", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
