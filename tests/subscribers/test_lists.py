"""Lists: create, read with counts, update, delete, pagination."""

from __future__ import annotations

from tests.conftest import AppClient
from tests.subscribers.helpers import add, make_list


async def test_create_list_and_duplicate_slug(client: AppClient) -> None:
    body = {"slug": "news", "name": "News", "description": "Weekly", "double_opt_in": False}
    response = await client.post("/api/v1/lists", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["slug"] == "news" and created["double_opt_in"] is False
    assert created["counts"] == {"confirmed": 0, "pending": 0, "unsubscribed": 0}
    again = await client.post("/api/v1/lists", json={"slug": "news", "name": "Other"})
    assert again.status_code == 409
    assert "news" in again.json()["detail"]


async def test_bad_list_input_is_422(client: AppClient) -> None:
    for body in (
        {"slug": "Has Spaces", "name": "x"},
        {"slug": "ok", "name": ""},
        {"slug": "ok"},
        {"slug": "ok", "name": "x", "double_opt_in": "maybe"},
        {"slug": "ok", "name": "x\r\nBcc: evil@example.com"},
    ):
        response = await client.post("/api/v1/lists", json=body)
        assert response.status_code == 422, body
    bad_json = await client.post(
        "/api/v1/lists", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert (await client.get("/api/v1/lists")).json()["items"] == []


async def test_counts_by_status(client: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    await add(client, "a@example.com", lists=["news"])
    await add(client, "b@example.com", lists=["news"])
    await add(client, "c@example.com", lists=["news", "other"], subscription_status="pending")
    d = await add(client, "d@example.com", lists=["news"])
    patch = await client.patch(
        f"/api/v1/subscribers/{d['id']}",
        json={"lists": [{"slug": "news", "status": "unsubscribed"}]},
    )
    assert patch.status_code == 200
    items = {i["slug"]: i for i in (await client.get("/api/v1/lists")).json()["items"]}
    assert items["news"]["counts"] == {"confirmed": 2, "pending": 1, "unsubscribed": 1}
    assert items["other"]["counts"] == {"confirmed": 0, "pending": 1, "unsubscribed": 0}
    one = await client.get("/api/v1/lists/news")
    assert one.json()["counts"]["confirmed"] == 2


async def test_lists_paginate_by_cursor(client: AppClient) -> None:
    for i in range(5):
        await make_list(client, f"list-{i}")
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # bounded: 5 lists at 2 a page is 3 pages
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/api/v1/lists", params=params)).json()
        seen += [i["slug"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"list-{i}" for i in range(5)]
    assert (await client.get("/api/v1/lists", params={"cursor": "garbage!"})).status_code == 422
    assert (await client.get("/api/v1/lists", params={"limit": 1001})).status_code == 422


async def test_update_and_delete_list(client: AppClient) -> None:
    await make_list(client, "news")
    changed = await client.patch("/api/v1/lists/news", json={"name": "The News", "public": False})
    assert changed.status_code == 200
    assert changed.json()["name"] == "The News" and changed.json()["public"] is False
    assert (await client.patch("/api/v1/lists/nope", json={"name": "x"})).status_code == 404
    assert (await client.delete("/api/v1/lists/news")).status_code == 204
    assert (await client.get("/api/v1/lists/news")).status_code == 404


async def test_lists_need_admin(anon: AppClient) -> None:
    assert (await anon.get("/api/v1/lists")).status_code == 401
    assert (await anon.post("/api/v1/lists", json={"slug": "x", "name": "x"})).status_code == 401


async def test_names_refuse_every_line_break_and_nul(client: AppClient) -> None:
    """A list name reaches List-Id; a description must be storable on PostgreSQL."""
    for i, name in enumerate(("a\u2028b", "a\u0085b", "a\x00b", "a\rb")):
        r = await client.post("/api/v1/lists", json={"slug": f"n{i}", "name": name})
        assert r.status_code == 422, name
    r = await client.post("/api/v1/lists", json={"slug": "d", "name": "D", "description": "a\x00"})
    assert r.status_code == 422
    ok = await client.post("/api/v1/lists", json={"slug": "d", "name": "D", "description": "a\nb"})
    assert ok.status_code == 201


async def test_errors_have_the_documented_422_shape(client: AppClient) -> None:
    """Every 422 is FastAPI's list of {loc, msg, type}, as the OpenAPI document says."""
    for path, params in (
        ("/api/v1/lists", {"cursor": "not-a-cursor"}),
        ("/api/v1/subscribers", {"cursor": "bm90LWlk"}),
        ("/api/v1/subscribers", {"q": "a\x00b"}),
        ("/api/v1/subscribers", {"list": "BAD SLUG"}),
        ("/api/v1/subscribers", {"status": "nope"}),
        ("/api/v1/lists/%00", {}),
    ):
        r = await client.get(path, params=params)
        assert r.status_code == 422, (path, params, r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, list) and detail[0]["loc"], (path, params, detail)


async def test_delete_refused_while_an_issue_may_still_send_to_it(client: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "spare")
    body = {"subject": "Hello", "lists": ["news"], "format": "markdown", "body": "Hi"}
    draft = (await client.post("/api/v1/issues", json=body)).json()
    cancelled = (await client.post("/api/v1/issues", json=body)).json()
    await client.post(f"/api/v1/issues/{cancelled['id']}/cancel")

    refused = await client.delete("/api/v1/lists/news")
    assert refused.status_code == 409, refused.text
    assert f"{draft['id']} (draft)" in refused.json()["detail"]
    assert "(cancelled)" not in refused.json()["detail"]  # a cancelled issue never sends
    assert (await client.get("/api/v1/lists/news")).status_code == 200

    assert (await client.delete(f"/api/v1/issues/{draft['id']}")).status_code == 204
    assert (await client.delete("/api/v1/lists/news")).status_code == 204
    assert (await client.delete("/api/v1/lists/spare")).status_code == 204
