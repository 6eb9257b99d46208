"""The audience pages over plain HTTP: what an editor changes, and every refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select

from app.accounts.models import AuditEntry
from app.models import Subscriber
from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient
from tests.subscribers.helpers import add, make_list

ConsoleAs = Callable[..., Awaitable[ConsoleClient]]


async def _audit(client: AppClient) -> list[tuple[str, str, str]]:
    async with client.app.state.sessionmaker() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(r.actor, r.action, r.target) for r in rows if r.action != "sign_in"]


async def test_editor_manages_a_list_through_the_pages(
    client: AppClient, console_as: ConsoleAs
) -> None:
    editor = await console_as("editor")
    csrf = editor.csrf
    created = await editor.post("/admin/lists", data={"csrf_token": csrf, "slug": "weekly",
                                "name": "Weekly <b>News</b>", "double_opt_in": "on"})  # fmt: skip
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/admin/lists/weekly"
    page = await editor.get("/admin/lists")
    assert "Weekly &lt;b&gt;News&lt;/b&gt;" in page.text and "<b>News</b>" not in page.text
    saved = await editor.post("/admin/lists/weekly", data={"csrf_token": csrf, "name": "Weekly",
                              "description": "Fridays", "public": "on"})  # fmt: skip
    assert saved.status_code == 303
    lists = (await client.get("/api/v1/lists")).json()["items"]
    assert [(m["name"], m["description"], m["double_opt_in"], m["public"]) for m in lists] == [
        ("Weekly", "Fridays", False, True)
    ]
    assert ("editor1@example.org", "list.create", "list weekly") in await _audit(client)


async def test_bad_list_form_changes_nothing(client: AppClient, console_as: ConsoleAs) -> None:
    editor = await console_as("editor")
    csrf = editor.csrf
    bad = await editor.post("/admin/lists", data={"csrf_token": csrf, "slug": "Not A Slug",
                            "name": "x" * 201})  # fmt: skip
    assert bad.status_code == 422
    assert "Name is too long" in bad.text and "Slug has characters that are not allowed" in bad.text
    assert (await client.get("/api/v1/lists")).json()["items"] == []
    await make_list(client, "news")
    taken = await editor.post("/admin/lists", data={"csrf_token": csrf, "slug": "news",
                              "name": "Again"})  # fmt: skip
    assert taken.status_code == 409 and "exists" in taken.text
    unknown = await editor.get("/admin/lists/nope")
    assert unknown.status_code == 404 and "no list with slug" in unknown.text


async def test_delete_explains_the_issues_that_keep_a_list(
    client: AppClient, console_as: ConsoleAs
) -> None:
    await make_list(client, "news")
    issue = await client.post("/api/v1/issues", json={"subject": "Draft one", "lists": ["news"],
                              "format": "markdown", "body": "hi"})  # fmt: skip
    assert issue.status_code == 201, issue.text
    editor = await console_as("editor")
    csrf = editor.csrf
    page = await editor.get("/admin/lists/news")
    assert "keeps the list from being deleted" in page.text
    refused = await editor.post("/admin/lists/news/delete", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert f"issue(s) {issue.json()['id']} (draft)" in refused.text
    assert len((await client.get("/api/v1/lists")).json()["items"]) == 1


async def test_viewer_reads_everything_and_changes_nothing(
    client: AppClient, console_as: ConsoleAs
) -> None:
    await make_list(client, "news")
    ann = await add(client, "ann@example.org", lists=["news"])
    viewer = await console_as("viewer")
    csrf = viewer.csrf
    for url in ("/admin/lists", "/admin/lists/news", "/admin/subscribers",
                f"/admin/subscribers/{ann['id']}", "/admin/bounces", "/admin/imports"):  # fmt: skip
        answer = await viewer.get(url)
        assert answer.status_code == 200, url
        assert url == "/admin/bounces" or "as a viewer" in answer.text, url
        assert '<button type="submit">Save' not in answer.text, url
    writes = [
        ("/admin/lists", {"slug": "x", "name": "X"}),
        ("/admin/lists/news", {"name": "Renamed"}),
        ("/admin/lists/news/delete", {}),
        ("/admin/subscribers/new", {"email": "new@example.org"}),
        (f"/admin/subscribers/{ann['id']}/name", {"name": "Mallory"}),
        (f"/admin/subscribers/{ann['id']}/status", {"status": "blocklisted"}),
        (f"/admin/subscribers/{ann['id']}/erase", {"confirm_email": "ann@example.org"}),
    ]
    for url, fields in writes:
        answer = await viewer.post(url, data={"csrf_token": csrf, **fields})
        assert answer.status_code == 403, url
    stream = await viewer.post(
        "/admin/imports/stream?list=news",
        content=b"email\na@example.org\n",
        headers={"X-CSRF-Token": csrf, "Content-Type": "text/csv"},
    )
    assert stream.status_code == 403
    me = (await client.get(f"/api/v1/subscribers/{ann['id']}")).json()
    assert (me["name"], me["status"]) == (None, "active")
    assert [m["name"] for m in (await client.get("/api/v1/lists")).json()["items"]] == ["News"]
    assert [a for a in await _audit(client) if a[0] == "viewer1@example.org"] == []


async def test_writes_without_the_csrf_token_are_refused(
    client: AppClient, console_as: ConsoleAs
) -> None:
    await make_list(client, "news")
    ann = await add(client, "ann@example.org", lists=["news"])
    editor = await console_as("editor")
    for url, fields in [
        ("/admin/lists", {"slug": "x", "name": "X"}),
        (f"/admin/subscribers/{ann['id']}/erase", {"confirm_email": "ann@example.org"}),
        (f"/admin/subscribers/{ann['id']}/attributes", {"mode": "json",
                                                        "attributes_json": "{}"}),
    ]:  # fmt: skip
        assert (await editor.post(url, data=fields)).status_code == 403, url
        wrong = await editor.post(url, data={"csrf_token": "0" * 64, **fields})
        assert wrong.status_code == 403, url
    stream = await editor.post(
        "/admin/imports/stream?list=news",
        content=b"email\na@example.org\n",
        headers={"Content-Type": "text/csv"},
    )
    assert stream.status_code == 403
    assert (await client.get(f"/api/v1/subscribers/{ann['id']}")).status_code == 200
    assert len((await client.get("/api/v1/subscribers")).json()["items"]) == 1


async def test_pages_need_a_session(anon: AppClient) -> None:
    for url in ("/admin/lists", "/admin/subscribers", "/admin/bounces", "/admin/imports"):
        answer = await anon.get(url)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/admin/login")
    assert (await anon.post("/admin/lists", data={"slug": "x", "name": "X"})).status_code in (
        303,
        403,
    )
    async with anon.app.state.sessionmaker() as session:
        assert (await session.scalars(select(Subscriber))).first() is None
