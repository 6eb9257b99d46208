"""Console issues over HTTP, part 2: the list's figures, the segment picker and its
confirmation, the image insert without JavaScript, and the preview's compiled-issue cache.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import update

from app.issues import preview_cache, service
from app.models import Issue, MailingList
from tests.console.conftest import ConsoleClient, create_account, csrf_of, sign_in
from tests.console.test_issues_pages import editor, form_of
from tests.issues.factory import add_deliveries, make_issue, make_list, make_subscriber, set_issue
from tests.media.images import image_bytes

pytestmark = pytest.mark.asyncio


def _cells(page: str, issue_id: int) -> dict[str, str]:
    row = page[page.index(f'href="/admin/issues/{issue_id}') :].split("</tr>", 1)[0]
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', row))


async def test_list_shows_sent_failed_and_bounced_per_issue(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    sent = await make_issue(client, lists=["weekly"], subject="October")
    other = await make_issue(client, lists=["weekly"], subject="September")
    draft = await make_issue(client, lists=["weekly"], subject="November")
    for issue in (sent, other):
        await set_issue(client, issue["id"], status="sent", recipients=6)
    ids = [await make_subscriber(client, f"r{n}@example.org") for n in range(6)]
    states = ["sent", "sent", "sent", "failed", "bounced", "queued"]
    rows = [{"subscriber_id": s, "status": st} for s, st in zip(ids, states, strict=True)]
    await add_deliveries(client, sent["id"], rows)
    await add_deliveries(client, other["id"], [{"subscriber_id": ids[0], "status": "failed"}])
    c = await console_as("viewer")
    page = (await c.get("/admin/issues")).text
    assert _cells(page, sent["id"]) == {"sent": "3", "failed": "1", "bounced": "1"}
    assert _cells(page, other["id"]) == {"sent": "0", "failed": "1", "bounced": "0"}
    assert _cells(page, draft["id"]) == {"sent": "", "failed": "", "bounced": ""}
    assert ">Sent</th>" in page and ">Failed</th>" in page and ">Bounced</th>" in page


async def test_list_pages_newest_first(client: Any, console_as: Any) -> None:
    async with client.app.state.sessionmaker() as session:
        session.add_all(Issue(subject=f"Issue number {n}", body="hi", status="draft",
                              recipients=0) for n in range(1, 56))  # fmt: skip
        await session.commit()
    c = await console_as("viewer")
    first = (await c.get("/admin/issues")).text
    assert "Issue number 55<" in first and "Issue number 6<" in first
    assert "Issue number 5<" not in first
    older = re.search(r'href="(/admin/issues\?before=\d+)"', first)
    assert older, "no link to the older issues"
    second = (await c.get(older[1])).text
    assert "Issue number 5<" in second and "Issue number 1<" in second
    assert "Issue number 6<" not in second and "?before=" not in second


async def test_segment_is_chosen_in_the_editor_and_named_at_sending(
    client: Any, console_as: Any
) -> None:
    await make_list(client, "weekly")
    for n, vip in enumerate((True, True, False)):
        await make_subscriber(client, f"s{n}@example.org", lists={"weekly": "confirmed"},
                              attributes={"vip": vip})  # fmt: skip
    await make_subscriber(client, "out@example.org", attributes={"vip": True})  # on no list
    rule = {"attribute": "vip", "op": "eq", "value": True}
    seg = (await client.post("/api/v1/segments", json={"name": "VIPs", "rules": rule})).json()
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    page, version = await editor(c, issue["id"])
    assert '<select id="f-segment" name="segment"' in page
    assert '<option value="">None: everyone on the lists</option>' in page
    assert f'<option value="{seg["id"]}">VIPs</option>' in page
    saved = await c.post_form(f"/admin/issues/{issue['id']}",
                              form_of(issue, segment=str(seg["id"]), version=version))  # fmt: skip
    assert saved.status_code == 303, saved.text
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["segment"] == seg["id"]
    page, version = await editor(c, issue["id"])
    assert f'<option value="{seg["id"]}" selected>VIPs</option>' in page
    confirm = (await c.get(f"/admin/issues/{issue['id']}/send")).text
    assert "VIPs" in confirm and "<strong>2</strong>" in confirm  # weekly ∩ VIPs
    assert "Send to 2 recipients now" in confirm
    unknown = await c.post_form(f"/admin/issues/{issue['id']}",
                                form_of(issue, segment="99999", version=version))  # fmt: skip
    assert unknown.status_code == 422 and "unknown segment" in unknown.text
    back = await c.post_form(f"/admin/issues/{issue['id']}", form_of(issue, segment="",
                                                                     version=version))  # fmt: skip
    assert back.status_code == 303
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["segment"] is None
    confirm = (await c.get(f"/admin/issues/{issue['id']}/send")).text
    assert "none: everyone on the lists" in confirm and "<strong>3</strong>" in confirm


async def test_image_insert_without_javascript(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    c.csrf = csrf_of((await c.get("/admin/media")).text)
    files = {"file": ("banner.png", image_bytes("PNG", (1200, 300)), "image/png")}
    assert (
        await c.post("/admin/media", data={"csrf_token": c.csrf}, files=files)
    ).status_code == 303
    page, version = await editor(c, issue["id"])
    chosen = re.search(r'name="media_id" value="(\d+)" form="issue-form"', page)
    assert chosen and 'formaction="/admin/issues/' in page
    # The whole editor form goes with the insert: the text typed but not saved is kept.
    form = form_of(issue, body="Typed, not saved yet.", version=version,
                   media_id=chosen[1], image_alt='The "big" banner')  # fmt: skip
    inserted = await c.post_form(f"/admin/issues/{issue['id']}/images", form)
    assert inserted.status_code == 303 and inserted.headers["location"].endswith(str(issue["id"]))
    body = (await client.get(f"/api/v1/issues/{issue['id']}")).json()["body"]
    assert re.fullmatch(r'Typed, not saved yet\.\n\n<img src="http://tidings\.test/media/'
                        r'[0-9a-f]{32}-600\.png" width="600" height="150"'
                        r' alt="The &quot;big&quot; banner">\n', body), body  # fmt: skip
    preview = (await c.get(f"/admin/issues/{issue['id']}/preview.json")).json()
    assert "-600.png" in preview["html"] and not any("alt" in w for w in preview["warnings"])
    # A stale version: 409, nothing saved, the author's text and image still in the form.
    stale = await c.post_form(f"/admin/issues/{issue['id']}/images", form)
    assert stale.status_code == 409 and "someone else saved this issue" in stale.text
    assert "Typed, not saved yet." in stale.text and "-600.png" in stale.text
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["body"] == body
    _, version = await editor(c, issue["id"])
    none = await c.post_form(f"/admin/issues/{issue['id']}/images",
                             form_of(issue, body=body, version=version))  # fmt: skip
    assert none.status_code == 422 and "choose an image" in none.text
    viewer = await console_as("viewer")
    await editor(viewer, issue["id"])
    refused = await viewer.post_form(f"/admin/issues/{issue['id']}/images", form)
    assert refused.status_code == 403


async def test_preview_compiles_once_per_version(
    client: Any, console_as: Any, monkeypatch: Any
) -> None:
    compiles: list[int] = []
    real = service.compiled

    async def counted(settings: Any, issue: Any) -> Any:
        compiles.append(issue.id)
        return await real(settings, issue)

    monkeypatch.setattr(service, "compiled", counted)
    preview_cache.clear()
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"], body="First version")
    c = await console_as("editor")
    _, version = await editor(c, issue["id"])
    url = f"/admin/issues/{issue['id']}"
    for sample in ("named", "nameless", "named"):
        assert "First version" in (await c.get(f"{url}/preview.json?sample={sample}")).text
    assert "First version" in (await c.get(f"/console-preview/issues/{issue['id']}")).text
    assert len(compiles) == 1
    saved = await c.post(f"{url}/autosave", headers={"X-CSRF-Token": c.csrf},
                         data=form_of(issue, body="Second version", version=version))  # fmt: skip
    assert saved.status_code == 200
    for _ in range(2):
        data = (await c.get(f"{url}/preview.json")).json()
        assert "Second version" in data["html"] and "First version" not in data["html"]
    assert len(compiles) == 2
    # A change the body does not show (the list's name in the footer) is a new compile too.
    async with client.app.state.sessionmaker() as session:
        await session.execute(update(MailingList).values(name="Weekly digest"))
        await session.commit()
    assert "Weekly digest" in (await c.get(f"{url}/preview.json")).json()["html"]
    assert len(compiles) == 3


async def test_the_system_issue_of_messages_is_in_no_console_list(
    client: Any, console_as: Any
) -> None:
    """Issue 0 carries the transactional messages (app/messages): nobody wrote it."""
    answer = await client.post("/api/v1/messages", json={
        "to": "receipt@example.org", "template": "message", "subject": "Your receipt",
        "data": {"text": "Thank you."},
    })  # fmt: skip
    assert answer.status_code == 202, answer.text
    c = await console_as("viewer")
    for path in ("/admin/issues", "/admin"):
        page = (await c.get(path)).text
        assert "Transactional messages" not in page, path


async def test_the_editor_routes_an_issue_through_chosen_servers(app_factory: Any) -> None:
    """With several SMTP servers configured, the editor names them; the choice is saved."""
    two = "smtp://127.0.0.1:2525?name=brand,smtp://127.0.0.1:2526?name=relay"
    client = await app_factory(smtp_url=two)
    c = ConsoleClient(transport=client._transport, base_url=str(client.base_url))
    c.app = client.app
    await create_account(c.app, "routes@example.org", "editor")
    assert (await sign_in(c, "routes@example.org")).status_code == 303
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"], subject="Routed")
    page, version = await editor(c, issue["id"])
    assert "Send through" in page and 'value="brand"' in page and 'value="relay"' in page
    form = form_of(issue, version=version, smtp_route="relay", smtp_route_shown="1")
    saved = await c.post_form(f"/admin/issues/{issue['id']}", form)
    assert saved.status_code == 303, saved.text
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["smtp_route"] == ["relay"]
    page, version = await editor(c, issue["id"])
    assert 'value="relay" checked' in page and 'value="brand" checked' not in page
    form = form_of(issue, version=version, smtp_route_shown="1")  # none ticked: any server
    assert (await c.post_form(f"/admin/issues/{issue['id']}", form)).status_code == 303
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["smtp_route"] is None


async def test_one_server_shows_no_route_choice(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    page, _ = await editor(await console_as("editor"), issue["id"])
    assert "Send through" not in page
