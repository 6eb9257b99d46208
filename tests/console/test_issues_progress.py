"""Live progress costs the database one measurement per issue per tick, however many watch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import event

from app.issues import progress
from tests.console.conftest import ConsoleClient
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


async def test_the_progress_stream_pushes_the_shared_figures_and_ends(
    client: Any, console_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server-sent events: the session is checked once; each event is the shared snapshot;
    the stream ends by itself (after STREAM_SECONDS while live, at once when finished)."""
    monkeypatch.setattr(progress, "TICK", 0.05)
    monkeypatch.setattr(progress, "STREAM_SECONDS", 0.3)
    await make_list(client, "weekly")
    for n in range(3):
        await make_subscriber(client, f"s{n}@example.org", lists={"weekly": "confirmed"})
    issue = await make_issue(client, lists=["weekly"])
    url = f"/admin/issues/{issue['id']}/progress"
    assert (await client.post(f"/api/v1/issues/{issue['id']}/send", json={})).status_code == 202
    assert (await client.post(f"/api/v1/issues/{issue['id']}/pause")).status_code == 200
    viewer = await console_as("viewer")
    answer = await viewer.get(url)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-store" and "retry: 2000" in answer.text
    events = _events(answer.text)
    assert len(events) >= 2, answer.text  # pushed while live, until the stream's life ended
    assert {(e["status"], e["recipients"], e["queued"]) for e in events} == {("paused", 3, 3)}

    assert (await client.post(f"/api/v1/issues/{issue['id']}/cancel")).status_code == 200
    progress.board(client.app.state).forget(issue["id"])
    done = _events((await viewer.get(url)).text)
    assert [e["status"] for e in done] == ["cancelled"]  # one event: the figures stay put

    assert (await viewer.get("/admin/issues/999999/progress")).status_code == 404
    stranger = ConsoleClient(transport=viewer._transport, base_url=str(viewer.base_url))
    refused = await stranger.get(url)
    assert refused.status_code in (303, 401) and "data:" not in refused.text


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_a_costly_count_is_asked_for_less_often_up_to_max_age(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot is fresh for SHARE times its query's time: a list whose count takes long
    (a million deliveries: ~0.2 s) is counted seldom, but never less than once a MAX_AGE."""
    await make_list(client, "weekly")
    await make_subscriber(client, "c@example.org", lists={"weekly": "confirmed"})
    issue = await make_issue(client, lists=["weekly"])
    assert (await client.post(f"/api/v1/issues/{issue['id']}/send", json={})).status_code == 202
    measured: list[float] = []
    real = progress._measure

    async def slow(session: Any, issue_id: int) -> dict[str, Any]:
        measured.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.1)  # a count of this cost stays fresh for >= 2 s at SHARE 20
        return await real(session, issue_id)

    monkeypatch.setattr(progress, "_measure", slow)
    monkeypatch.setattr(progress, "TICK", 0.01)
    monkeypatch.setattr(progress, "SHARE", 20)
    board, maker = progress.ProgressBoard(), client.app.state.sessionmaker
    first = await board.read(maker, issue["id"])
    await asyncio.sleep(0.3)  # thirty ticks, but far less than twenty times the count
    assert await board.read(maker, issue["id"]) == first
    assert len(measured) == 1

    monkeypatch.setattr(progress, "MAX_AGE", 0.2)
    board.forget(issue["id"])
    await board.read(maker, issue["id"])
    await asyncio.sleep(0.4)
    await board.read(maker, issue["id"])
    assert len(measured) == 3  # the cap: counted again once MAX_AGE had passed
