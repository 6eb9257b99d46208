"""triggers.patch and triggers.copy, the rules behind PATCH of a triggered issue and its
duplicate, on both databases (wired into the issues service by its owner)."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import Conflict, Invalid
from app.issues import triggers
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list


async def _patch(client: AppClient, issue_id: int, **kwargs: Any) -> list[str] | None:
    """triggers.patch in a transaction of its own, as the service's request would run it."""
    status = (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"]
    async with client.app.state.sessionmaker() as s, s.begin():
        args = {"given": True, "slug": None, "after_seconds": None, "lists": None} | kwargs
        return await triggers.patch(s, issue_id, status=status, **args)


async def _rule(client: AppClient, issue_id: int) -> dict[str, Any] | None:
    async with client.app.state.sessionmaker() as s:
        return await triggers.rule(s, issue_id)


async def test_changed_while_draft_or_inactive_and_refused_while_active(
    client: AppClient,
) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    iid = (await make_issue(client, trigger={"list": "news", "after_seconds": 60}))["id"]
    assert await _patch(client, iid, slug="other", after_seconds=5) == ["other"]
    assert await _rule(client, iid) == {"list": "other", "after_seconds": 5}
    with pytest.raises(Invalid, match="after_seconds"):
        await _patch(client, iid, slug="other", after_seconds=-1)
    with pytest.raises(Invalid, match="unknown list"):
        await _patch(client, iid, slug="nope", after_seconds=1)
    with pytest.raises(Invalid, match=r"\[trigger.list\]"):
        await _patch(client, iid, slug="other", after_seconds=1, lists=["news"])
    with pytest.raises(Invalid, match=r"\[trigger.list\]"):
        await _patch(client, iid, given=False, lists=["news"])  # lists alone
    assert await _patch(client, iid, given=False, lists=["other"]) is None  # as it is
    assert await _rule(client, iid) == {"list": "other", "after_seconds": 5}

    assert (await client.post(f"/api/v1/issues/{iid}/activate")).status_code == 200
    with pytest.raises(Conflict, match="deactivate"):
        await _patch(client, iid, slug="news", after_seconds=1)
    with pytest.raises(Conflict, match="deactivate"):
        await _patch(client, iid, given=False, lists=["other"])
    assert (await client.post(f"/api/v1/issues/{iid}/deactivate")).status_code == 200
    assert await _patch(client, iid, slug="news", after_seconds=7200) == ["news"]
    assert await _rule(client, iid) == {"list": "news", "after_seconds": 7200}
    with pytest.raises(Conflict, match="only a draft"):
        await _patch(client, iid)  # trigger: null while inactive
    assert await _rule(client, iid) == {"list": "news", "after_seconds": 7200}


async def test_a_draft_gains_and_loses_a_trigger_and_a_sent_one_neither(
    client: AppClient,
) -> None:
    await make_list(client, "news")
    iid = (await make_issue(client))["id"]
    assert await _patch(client, iid, slug="news", after_seconds=0) == ["news"]
    assert await _rule(client, iid) == {"list": "news", "after_seconds": 0}
    assert await _patch(client, iid) is None
    assert await _rule(client, iid) is None
    scheduled = (await make_issue(client))["id"]
    r = await client.post(f"/api/v1/issues/{scheduled}/send",
                          json={"send_at": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert r.status_code == 202
    with pytest.raises(Conflict, match="scheduled"):
        await _patch(client, scheduled, slug="news", after_seconds=0)


async def test_copy_carries_the_trigger(client: AppClient) -> None:
    await make_list(client, "news")
    source = (await make_issue(client, trigger={"list": "news", "after_seconds": 86400}))["id"]
    plain = (await make_issue(client))["id"]
    targets = [(await make_issue(client))["id"] for _ in range(2)]
    async with client.app.state.sessionmaker() as s, s.begin():
        await triggers.copy(s, source, targets[0])
        await triggers.copy(s, plain, targets[1])  # an ordinary issue's copy: none
    assert await _rule(client, targets[0]) == {"list": "news", "after_seconds": 86400}
    assert await _rule(client, targets[1]) is None
