"""The issue life cycle has one owner: API and scheduler start sends alike; pauses say why."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.issues import lifecycle
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber, set_issue

APP = Path(__file__).resolve().parents[2] / "app"


async def test_scheduler_starts_a_send_as_the_api_does(client: AppClient) -> None:
    await make_list(client, "news")
    for n in range(3):
        await make_subscriber(client, f"r{n}@example.org", lists={"news": "confirmed"})
    now_sent = await make_issue(client)
    scheduled = await make_issue(client)
    assert (await client.post(f"/api/v1/issues/{now_sent['id']}/send")).status_code == 202
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    url = f"/api/v1/issues/{scheduled['id']}"
    assert (await client.post(f"{url}/send", json={"send_at": soon})).status_code == 202
    await set_issue(client, scheduled["id"], send_at=datetime.now(UTC) - timedelta(seconds=1))
    async with client.app.state.sessionmaker() as session, session.begin():
        assert await lifecycle.promote_scheduled(session=session) == [scheduled["id"]]
        assert await lifecycle.promote_scheduled(session=session) == []  # one winner
    by_api = (await client.get(f"/api/v1/issues/{now_sent['id']}")).json()
    by_scheduler = (await client.get(url)).json()
    for issue in (by_api, by_scheduler):
        assert issue["status"] == "sending" and issue["recipients"] == 3
        assert issue["started_at"] is not None and issue["status_reason"] is None


async def test_a_pause_says_who_paused_and_resume_clears_it(client: AppClient) -> None:
    await make_list(client, "news")
    issue = await make_issue(client)
    url = f"/api/v1/issues/{issue['id']}"
    await client.post(f"{url}/send")
    paused = (await client.post(f"{url}/pause")).json()
    assert paused["status"] == "paused" and paused["status_reason"] == "paused by an administrator"
    started = paused["started_at"]
    resumed = (await client.post(f"{url}/resume")).json()
    assert resumed["status"] == "sending" and resumed["status_reason"] is None
    assert resumed["started_at"] == started  # a resume is not a new start
    async with client.app.state.sessionmaker() as session, session.begin():
        assert await lifecycle.pause(session, issue["id"], "12 consecutive failures: 421")
    assert (await client.get(url)).json()["status_reason"] == "12 consecutive failures: 421"


def _status_writers(path: Path) -> list[str]:
    """Places in a module that write issues.status (ORM values or SQL text)."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.upper()
            if "UPDATE ISSUES SET" in text and "STATUS" in text:
                found.append(f"{path.name}: {node.value[:40]}")
        # update(Issue).values(status=...): a new draft's initial status is not a change.
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg == "status" for k in node.keywords)
            and "update(Issue)" in source
        ):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_only_lifecycle_writes_an_issue_status() -> None:
    writers = {
        str(p.relative_to(APP)): _status_writers(p)
        for p in APP.rglob("*.py")
        if p.name != "lifecycle.py"
    }
    assert {k: v for k, v in writers.items() if v} == {}
    assert _status_writers(APP / "issues" / "lifecycle.py")  # the checker does see writes


def test_issue_services_do_not_import_fastapi() -> None:
    for name in ("service", "lifecycle", "archive", "testsend", "compose", "rendering"):
        tree = ast.parse((APP / "issues" / f"{name}.py").read_text())
        imported = {
            alias.name if isinstance(node, ast.Import) else node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not any(m.split(".")[0] in ("fastapi", "starlette") for m in imported), name


async def test_service_refusals_are_fastapi_shaped(client: AppClient) -> None:
    await make_list(client, "news")
    bad = await client.post("/api/v1/issues", json={"subject": "s", "lists": ["nope"], "body": "x"})
    assert bad.status_code == 422
    [error] = bad.json()["detail"]
    assert error["loc"] == ["body", "lists"] and error["type"] == "value_error"
    assert "nope" in error["msg"]
    issue = await make_issue(client)
    await set_issue(client, issue["id"], status="sent")
    edit = await client.patch(f"/api/v1/issues/{issue['id']}", json={"subject": "Later"})
    assert edit.status_code == 409 and "sent" in edit.json()["detail"]
    assert (await client.post("/api/v1/issues/99999/send")).status_code == 404
