"""A person's page, the table, the import and the bounce log over plain HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from app.accounts.models import AuditEntry
from app.models import Bounce
from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient
from tests.smtp import SMTPServer
from tests.subscribers.helpers import add, confirm_token, make_list

ConsoleAs = Callable[..., Awaitable[ConsoleClient]]


async def _audit(client: AppClient) -> list[tuple[str, str, str, str]]:
    async with client.app.state.sessionmaker() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(r.actor, r.action, r.target, r.detail) for r in rows]


XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


async def test_table_search_filters_and_pages(
    client: AppClient, console_as: ConsoleAs, monkeypatch: object
) -> None:
    from app.console import subscribers as pages

    await make_list(client, "news")
    for i in range(5):
        await add(client, f"p{i}@example.org", name=f"Person {i}", lists=["news"])
    await add(client, "zed@example.org", name="Zed")
    editor = await console_as("editor")
    found = await editor.get("/admin/subscribers", params={"q": "ZED"})
    assert found.status_code == 200
    assert "zed@example.org" in found.text and "p1@example.org" not in found.text
    monkeypatch.setattr(pages, "PAGE_ROWS", 2)  # type: ignore[attr-defined]
    first = await editor.get("/admin/subscribers", params={"list": "news", "status": "confirmed"})
    assert "p0@example.org" in first.text and "p2@example.org" not in first.text
    next_link = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = await editor.get(next_link.replace("&amp;", "&"))
    assert "p2@example.org" in second.text and "p0@example.org" not in second.text
    unknown = await editor.get("/admin/subscribers", params={"list": "nope"})
    assert unknown.status_code == 404 and "no list with slug" in unknown.text
    mismatch = await editor.get("/admin/subscribers", params={"status": "pending"})
    assert mismatch.status_code == 422 and "status is one of" in mismatch.text
    forged = await editor.get("/admin/subscribers", params={"cursor": "bm90LW91cnM"})
    assert forged.status_code == 422 and "not one the console made" in forged.text
    export = await editor.get("/admin/subscribers/export.csv", params={"list": "news"})
    assert export.status_code == 200 and export.text.count("@example.org") == 5


async def test_add_by_hand_and_its_refusals(client: AppClient, console_as: ConsoleAs) -> None:
    await make_list(client, "news")
    editor = await console_as("editor")
    csrf = editor.csrf
    made = await editor.post("/admin/subscribers/new", data={"csrf_token": csrf,
                             "email": "Ann@Example.ORG", "name": XSS, "lists": "news"})  # fmt: skip
    assert made.status_code == 303, made.text
    person = await editor.get(made.headers["location"])
    assert "<script>alert(1)" not in person.text and "&lt;script&gt;" in person.text
    again = await editor.post("/admin/subscribers/new", data={"csrf_token": csrf,
                              "email": "ann@example.org"})  # fmt: skip
    assert again.status_code == 409 and "exists" in again.text
    bad = await editor.post("/admin/subscribers/new", data={"csrf_token": csrf,
                            "email": "not an address", "lists": "ghost"})  # fmt: skip
    assert bad.status_code == 422
    assert len((await client.get("/api/v1/subscribers")).json()["items"]) == 1


async def test_pending_addition_sends_the_confirmation(
    client: AppClient, console_as: ConsoleAs, smtpd: SMTPServer
) -> None:
    await make_list(client, "news", double_opt_in=True)
    editor = await console_as("editor")
    made = await editor.post("/admin/subscribers/new", data={"csrf_token": editor.csrf,
                             "email": "cy@example.org", "lists": "news",
                             "subscription_status": "pending"})  # fmt: skip
    assert made.status_code == 303, made.text
    assert confirm_token(smtpd, "cy@example.org")
    me = (await client.get("/api/v1/subscribers")).json()["items"][0]
    assert me["lists"] == [{"slug": "news", "status": "pending"}]


async def test_attributes_as_rows_and_as_json(client: AppClient, console_as: ConsoleAs) -> None:
    ann = await add(client, "ann@example.org", attributes={"plan": "pro", "seats": 3})
    editor = await console_as("editor")
    csrf = editor.csrf
    url = f"/admin/subscribers/{ann['id']}/attributes"
    rows = await editor.post(url, data={"csrf_token": csrf, "mode": "rows",
                             "key": ["plan", "seats", "city", ""],
                             "value": ["team", "3", XSS, ""]})  # fmt: skip
    assert rows.status_code == 303, rows.text
    saved = (await client.get(f"/api/v1/subscribers/{ann['id']}")).json()["attributes"]
    assert saved == {"plan": "team", "seats": 3, "city": XSS}  # seats kept its type
    page = await editor.get(f"/admin/subscribers/{ann['id']}")
    assert 'onerror="alert(2)"' not in page.text and "&lt;img src=x" in page.text
    broken = await editor.post(url, data={"csrf_token": csrf, "mode": "json",
                               "attributes_json": '{"plan": "x",}'})  # fmt: skip
    assert broken.status_code == 422 and "not valid JSON" in broken.text and "line 1" in broken.text
    listy = await editor.post(url, data={"csrf_token": csrf, "mode": "json",
                              "attributes_json": "[1, 2]"})  # fmt: skip
    assert listy.status_code == 422 and "one JSON object" in listy.text
    twice = await editor.post(url, data={"csrf_token": csrf, "mode": "rows",
                              "key": ["a", "a"], "value": ["1", "2"]})  # fmt: skip
    assert twice.status_code == 422 and "used twice" in twice.text
    ok = await editor.post(url, data={"csrf_token": csrf, "mode": "json",
                           "attributes_json": json.dumps({"tier": "gold"})})  # fmt: skip
    assert ok.status_code == 303
    assert (await client.get(f"/api/v1/subscribers/{ann['id']}")).json()["attributes"] == {
        "tier": "gold"
    }


async def test_blocklist_export_and_erase_with_confirmation(
    client: AppClient, console_as: ConsoleAs
) -> None:
    await make_list(client, "news")
    ann = await add(client, "ann@example.org", name="Ann", lists=["news"])
    editor = await console_as("editor")
    csrf = editor.csrf
    base = f"/admin/subscribers/{ann['id']}"
    blocked = await editor.post(
        f"{base}/status", data={"csrf_token": csrf, "status": "blocklisted"}
    )
    assert blocked.status_code == 303
    me = (await client.get(f"/api/v1/subscribers/{ann['id']}")).json()
    assert (me["status"], me["blocklist_reason"]) == ("blocklisted", "manual")
    await editor.post(f"{base}/status", data={"csrf_token": csrf, "status": "active"})
    assert (await client.get(f"/api/v1/subscribers/{ann['id']}")).json()["status"] == "active"
    export = await editor.get(f"{base}/export")
    assert "attachment" in export.headers["content-disposition"]
    assert export.json()["subscriber"]["email"] == "ann@example.org"
    confirm = await editor.get(f"{base}/erase")
    assert "Type the address" in confirm.text
    wrong = await editor.post(f"{base}/erase", data={"csrf_token": csrf, "confirm_email": "ann"})
    assert wrong.status_code == 422 and "nothing was erased" in wrong.text
    assert (await client.get(f"/api/v1/subscribers/{ann['id']}")).status_code == 200
    erased = await editor.post(f"{base}/erase", data={"csrf_token": csrf,
                               "confirm_email": " ANN@example.org "})  # fmt: skip
    assert erased.status_code == 303
    assert (await client.get(f"/api/v1/subscribers/{ann['id']}")).status_code == 404
    assert (await editor.get(base)).status_code == 404
    actions = [(a[0], a[1], a[2]) for a in await _audit(client) if a[0] == "editor1@example.org"]
    assert ("editor1@example.org", "subscriber.erase", f"subscriber {ann['id']}") in actions
    assert all("ann@example.org" not in a[3] for a in await _audit(client))  # no address kept


async def test_import_by_form_post_and_by_stream(client: AppClient, console_as: ConsoleAs) -> None:
    await make_list(client, "news")
    editor = await console_as("editor")
    csrf = editor.csrf
    csv_bytes = (
        b"email,name,city\nann@example.org,Ann,Oslo\nnot-an-address,X,\nbob@example.org,Bob,\n"
    )
    posted = await editor.post("/admin/imports", data={"csrf_token": csrf, "list": "news"},
                               files={"file": ("people.csv", csv_bytes, "text/csv")})  # fmt: skip
    assert posted.status_code == 200, posted.text
    assert "<strong>2</strong> created" in posted.text
    assert '<th scope="row" class="num">3</th>' in posted.text  # the bad row, by its line
    streamed = await editor.post(
        "/admin/imports/stream?list=news",
        content=csv_bytes + b"cy@example.org,Cy,\n",
        headers={"X-CSRF-Token": csrf, "Content-Type": "text/csv", "Accept": "application/json"},
    )
    assert streamed.status_code == 200, streamed.text
    body = streamed.json()
    assert (body["created"], body["updated"] + body["skipped"]) == (1, 2)
    assert [e["line"] for e in body["errors"]] == [3]
    no_list = await editor.post("/admin/imports", data={"csrf_token": csrf, "list": "ghost"},
                                files={"file": ("p.csv", csv_bytes, "text/csv")})  # fmt: skip
    assert no_list.status_code == 422 and "Choose a list that exists" in no_list.text
    no_email = await editor.post("/admin/imports", data={"csrf_token": csrf, "list": "news"},
                                 files={"file": ("p.csv", b"name\nAnn\n", "text/csv")})  # fmt: skip
    assert no_email.status_code == 422 and "Nothing was imported" in no_email.text
    imports = [a for a in await _audit(client) if a[1] == "import.create"]
    assert [(a[0], a[2], a[3]) for a in imports] == [
        ("editor1@example.org", "list news", "created=2; updated=0; skipped=0; errors=1"),
        ("editor1@example.org", "list news", "created=1; updated=0; skipped=2; errors=1"),
    ]
    people = (await client.get("/api/v1/subscribers")).json()["items"]
    assert sorted(p["email"] for p in people) == [
        "ann@example.org",
        "bob@example.org",
        "cy@example.org",
    ]


async def test_bounce_log_filters_and_links(client: AppClient, console_as: ConsoleAs) -> None:
    ann = await add(client, "ann@example.org")
    async with client.app.state.sessionmaker() as session:
        session.add_all([
            Bounce(event_key="a", email="ann@example.org", subscriber_id=ann["id"], type="hard",
                   source="dsn", diagnostic=XSS),
            Bounce(event_key="b", email="bob@example.org", type="soft", source="api"),
        ])  # fmt: skip
        await session.commit()
    viewer = await console_as("viewer")
    everything = await viewer.get("/admin/bounces")
    assert "bob@example.org" in everything.text
    assert f'href="/admin/subscribers/{ann["id"]}"' in everything.text
    assert "<script>alert(1)" not in everything.text
    hard = await viewer.get("/admin/bounces", params={"type": "hard"})
    assert "ann@example.org" in hard.text and "bob@example.org" not in hard.text
    bob = await viewer.get("/admin/bounces", params={"email": "BOB@example.org"})
    assert "bob@example.org" in bob.text and "ann@example.org" not in bob.text
    bad = await viewer.get("/admin/bounces", params={"type": "nasty"})
    assert bad.status_code == 422 and "Choose a type" in bad.text


async def test_membership_set_by_hand_and_an_opt_out_kept(
    client: AppClient, console_as: ConsoleAs
) -> None:
    await make_list(client, "news")
    await make_list(client, "deals")
    ann = await add(client, "ann@example.org", lists=["news"])
    leave = {"lists": [{"slug": "news", "status": "unsubscribed"}]}
    patched = await client.patch(f"/api/v1/subscribers/{ann['id']}", json=leave)
    assert patched.status_code == 200, patched.text
    editor = await console_as("editor")
    url = f"/admin/subscribers/{ann['id']}/lists"
    joined = await editor.post(url, data={"csrf_token": editor.csrf, "list": "deals",
                               "status": "confirmed"})  # fmt: skip
    assert joined.status_code == 303
    back = await editor.post(url, data={"csrf_token": editor.csrf, "list": "news",
                             "status": "confirmed"})  # fmt: skip
    assert back.status_code == 409 and "only her own confirmation" in back.text
    ghost = await editor.post(url, data={"csrf_token": editor.csrf, "list": "ghost",
                              "status": "confirmed"})  # fmt: skip
    assert ghost.status_code == 422 and "no list with slug" in ghost.text
    lists = (await client.get(f"/api/v1/subscribers/{ann['id']}")).json()["lists"]
    assert lists == [
        {"slug": "deals", "status": "confirmed"},
        {"slug": "news", "status": "unsubscribed"},
    ]
