"""Live progress costs the database one measurement per issue per tick, however many watch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from app.issues import progress
from tests.issues.factory import make_issue, make_list, make_subscriber

pytestmark = pytest.mark.asyncio


async def test_ten_viewers_share_one_measurement(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    for n in range(5):
        await make_subscriber(client, f"r{n}@example.org", lists={"weekly": "confirmed"})
    issue = await make_issue(client, lists=["weekly"])
    assert (await client.post(f"/api/v1/issues/{issue['id']}/send", json={})).status_code == 202
    statements: list[str] = []
    engine = client.app.state.engine.sync_engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        board = progress.ProgressBoard()
        maker = client.app.state.sessionmaker
        alone = await board.read(maker, issue["id"])
        one_viewer = len(statements)
        board.forget(issue["id"])
        statements.clear()
        seen = await asyncio.gather(*(board.read(maker, issue["id"]) for _ in range(10)))
        assert len(statements) == one_viewer
        assert all(s == alone for s in seen)
        assert (alone["status"], alone["recipients"], alone["queued"]) == ("sending", 5, 5)
        # Through the console too: the page's endpoint reads the app's shared board.
        viewers = [await console_as("viewer") for _ in range(3)]
        statements.clear()
        answers = await asyncio.gather(
            *(v.get(f"/admin/issues/{issue['id']}/progress.json") for v in viewers)
        )
        assert {a.json()["recipients"] for a in answers} == {5}
        progress_queries = [s for s in statements if "deliveries" in s.lower()]
        assert len(progress_queries) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)
