"""PATCH and duplicate of a triggered issue over the API (the rules: triggers.patch/copy)."""

from __future__ import annotations

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list


async def test_a_welcome_is_changed_while_inactive_and_refused_while_active(
    client: AppClient,
) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    welcome = await make_issue(client, trigger={"list": "news", "after_seconds": 0})
    url = f"/api/v1/issues/{welcome['id']}"

    moved = await client.patch(url, json={"trigger": {"list": "other", "after_seconds": 60}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["trigger"] == {"list": "other", "after_seconds": 60}
    assert moved.json()["lists"] == ["other"]  # a triggered issue's only list follows it

    bad = await client.patch(url, json={"trigger": {"list": "other", "after_seconds": -5}})
    assert bad.status_code == 422 and "after_seconds" in bad.text
    unknown = await client.patch(url, json={"trigger": {"list": "nope", "after_seconds": 5}})
    assert unknown.status_code == 422
    assert (await client.patch(url, json={"lists": ["news"]})).status_code == 422

    assert (await client.post(f"{url}/activate")).status_code == 200
    refused = await client.patch(url, json={"subject": "Welcome, again"})
    assert refused.status_code == 409 and "deactivate" in refused.text
    assert (await client.patch(url, json={"in_archive": False})).status_code == 200

    assert (await client.post(f"{url}/deactivate")).status_code == 200
    later = {"list": "other", "after_seconds": 3600}
    edited = await client.patch(url, json={"subject": "Welcome aboard", "trigger": later})
    assert edited.status_code == 200, edited.text
    assert edited.json()["subject"] == "Welcome aboard"
    assert edited.json()["trigger"] == later
    assert (await client.get(url)).json()["status"] == "inactive"
    # Inactive is a triggered issue's status: it cannot stop being triggered.
    assert (await client.patch(url, json={"trigger": None})).status_code == 409


async def test_a_draft_may_lose_its_trigger_and_a_duplicate_keeps_it(client: AppClient) -> None:
    await make_list(client, "news")
    welcome = await make_issue(client, trigger={"list": "news", "after_seconds": 86400})
    copy = await client.post(f"/api/v1/issues/{welcome['id']}/duplicate")
    assert copy.status_code == 201, copy.text
    assert copy.json()["status"] == "draft"
    assert copy.json()["trigger"] == {"list": "news", "after_seconds": 86400}

    plain = await client.patch(f"/api/v1/issues/{copy.json()['id']}", json={"trigger": None})
    assert plain.status_code == 200, plain.text
    assert plain.json()["trigger"] is None
    # No longer triggered: it is sent like any issue, not activated.
    assert (await client.post(f"/api/v1/issues/{copy.json()['id']}/activate")).status_code == 409
    source = (await client.get(f"/api/v1/issues/{welcome['id']}")).json()
    assert source["trigger"] == {"list": "news", "after_seconds": 86400}
