"""The hosted form posts to its own page; errors in plain words, once; no name is NULL."""

from __future__ import annotations

from tests.conftest import AppClient
from tests.subscribers.helpers import add, make_list

HTML = {"accept": "text/html"}


async def test_the_form_posts_to_its_own_page(client: AppClient, anon: AppClient) -> None:
    """Issue 10: the address bar changed to /api/v1/subscribe after an error."""
    await make_list(client, "news", name="The Weekly News")
    page = (await anon.get("/subscribe")).text
    assert 'action="/subscribe"' in page
    r = await anon.post(
        "/subscribe", data={"email": "ann@example.org", "list": "news"}, headers=HTML
    )
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/thanks?status=pending"


async def test_an_error_shows_once_in_plain_words(client: AppClient, anon: AppClient) -> None:
    """Issue 10: it showed twice, as "invalid email address: An email address must have…"."""
    await make_list(client, "news")
    for path in ("/subscribe", "/api/v1/subscribe"):  # the page, and a form embedded elsewhere
        r = await anon.post(path, data={"email": "not an address", "list": "news"}, headers=HTML)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
        assert r.text.count("Enter a valid email address") == 1, path
        assert "@-sign" not in r.text and "invalid email address" not in r.text
        assert 'value="not an address"' in r.text


async def test_blank_names_are_stored_as_none(client: AppClient, anon: AppClient) -> None:
    """Issue 10: "" defeated `default()` in templates ("Dear ,")."""
    await make_list(client, "news", double_opt_in=False)
    await anon.post("/subscribe", data={"email": "form@example.org", "name": "", "list": "news"})
    await anon.post(
        "/api/v1/subscribe", json={"email": "api@example.org", "name": "  ", "lists": ["news"]}
    )
    await add(client, "admin@example.org", name="")
    named = await add(client, "named@example.org", name="Ann")
    r = await client.patch(f"/api/v1/subscribers/{named['id']}", json={"name": " "})
    assert r.json()["name"] is None
    r = await client.post(
        "/api/v1/subscribers/import?list=news",
        content=b"email,name\nimported@example.org,\n",
        headers={"content-type": "text/csv"},
    )
    assert r.json()["created"] == 1
    items = (await client.get("/api/v1/subscribers")).json()["items"]
    assert {s["email"]: s["name"] for s in items} == {
        "form@example.org": None,
        "api@example.org": None,
        "admin@example.org": None,
        "named@example.org": None,
        "imported@example.org": None,
    }
