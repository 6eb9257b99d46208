"""Operational endpoints and the app's guards."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.main import create_app
from tests.conftest import AppClient
from tests.issues.factory import add_deliveries, make_issue, make_list, now


async def test_healthz_and_readyz(client: AppClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_readyz_503_when_database_unreachable(app_factory) -> None:  # type: ignore[no-untyped-def]
    client = await app_factory(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["detail"]  # names the failure, no trace
    assert "Traceback" not in response.text


def _metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_metrics_values_follow_the_queue_and_the_sends(client: AppClient) -> None:
    await make_list(client, "news")
    issue = await make_issue(client)
    await client.post(f"/api/v1/issues/{issue['id']}/send")  # no recipients: nothing queued
    healthz = 'tidings_http_requests_total{method="GET",route="/healthz",status="200"}'
    before = (await client.get("/metrics")).text
    assert _metric(before, "tidings_queue_depth") == 0
    assert _metric(before, "tidings_send_rate") == 0
    seen = _metric(before, healthz) if healthz in before else 0.0
    await client.get("/healthz")
    await client.get("/healthz")

    await add_deliveries(client, issue["id"], [{"status": "queued"}] * 3 + [
        {"status": "sent", "sent_at": now()} for _ in range(30)
    ])  # fmt: skip
    after = (await client.get("/metrics")).text
    assert _metric(after, healthz) == seen + 2
    assert _metric(after, "tidings_queue_depth") == 3
    assert _metric(after, "tidings_send_rate") == 30 / 60  # database-wide, the last minute


async def test_openapi_docs_work_offline(client: AppClient) -> None:
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Tidings"
    for page, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
        ("/redoc", ("redoc.standalone.js",)),
    ):
        html = (await client.get(page)).text
        assert "/openapi.json" in html
        assert "cdn" not in html.lower() and "https://" not in html  # nothing from elsewhere
        for asset in assets:
            assert f'"/docs/assets/{asset}"' in html
            served = await client.get(f"/docs/assets/{asset}")
            assert served.status_code == 200 and len(served.content) > 10_000


def test_var_is_private_on_creation_and_fixed_on_start(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {"TIDINGS_VAR_DIR": str(var), "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{var}/t.db"}
    result = CliRunner().invoke(cli, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    settings = Settings(var_dir=var, database_url=env["TIDINGS_DATABASE_URL"])
    settings.secret_key_value  # noqa: B018 (creates var/secret-key)
    assert _mode(var) == 0o700 and _mode(var / "t.db") == 0o600
    assert _mode(var / "secret-key") == 0o600

    # What older versions (and SQLite under a 022 umask) left behind is put right at start.
    os.chmod(var, 0o755)  # noqa: S103 (the permissive mode under test)
    os.chmod(var / "t.db", 0o644)
    (var / "admin-token").write_text("x\n")
    os.chmod(var / "admin-token", 0o644)
    app = create_app(settings.model_copy(update={"embedded_worker": False}))
    with TestClient(app) as started:
        assert started.get("/healthz").status_code == 200
    assert _mode(var) == 0o700
    assert _mode(var / "t.db") == 0o600 and _mode(var / "admin-token") == 0o600


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_oversized_body_refused_with_413(client: AppClient) -> None:
    big = b"x" * (client.app.state.settings.max_body_bytes + 1)
    response = await client.post(
        "/api/v1/lists", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_the_fast_paths_answers_are_counted_as_the_routes_would_be(
    client: AppClient,
) -> None:
    """A sign-up and a redirect answered ahead of MetricsMiddleware still reach /metrics."""
    await make_list(client, "news", double_opt_in=False, public=True)
    signup = 'tidings_http_requests_total{method="POST",route="/api/v1/subscribe",status="202"}'
    redirect = 'tidings_http_requests_total{method="GET",route="/r/{token}",status="404"}'
    before = (await client.get("/metrics")).text
    seen = {k: _metric(before, k) if k in before else 0.0 for k in (signup, redirect)}
    answer = await client.post(
        "/api/v1/subscribe", json={"email": "ops@example.org", "lists": ["news"]}
    )
    assert answer.status_code == 202, answer.text
    assert (await client.get("/r/AAAAAQAAAAAAAAABAAO5geVnL6kgYnsk")).status_code == 404
    after = (await client.get("/metrics")).text
    assert _metric(after, signup) == seen[signup] + 1
    assert _metric(after, redirect) == seen[redirect] + 1
