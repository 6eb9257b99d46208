"""The issues API: authoring, validation, pagination, preview and test sends."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from app import tokens
from tests.conftest import AppClient
from tests.issues.factory import delivery_rows, make_issue, make_list, make_subscriber
from tests.smtp import SMTPServer

FIELDS = {
    "id", "subject", "preheader", "from", "lists", "template", "format", "body", "status",
    "status_reason", "send_at", "created_at", "updated_at", "started_at", "finished_at",
    "recipients", "in_archive", "segment", "track_opens", "track_clicks", "trigger", "smtp_route",
}  # fmt: skip


@pytest.fixture
async def news(client: AppClient) -> int:
    return await make_list(client, "news", "Weekly News")


async def test_create_read_update_delete(client: AppClient, news: int) -> None:
    await make_list(client, "offers")
    issue = await make_issue(client, preheader="Short", lists=["news", "offers"])
    assert set(issue) == FIELDS
    assert issue["status"] == "draft"
    assert issue["lists"] == ["news", "offers"]
    assert issue["from"] == client.app.state.settings.from_
    assert issue["template"] == "newsletter" and issue["recipients"] == 0

    got = await client.get(f"/api/v1/issues/{issue['id']}")
    assert got.status_code == 200 and got.json() == issue

    patched = await client.patch(
        f"/api/v1/issues/{issue['id']}",
        json={"subject": "Week 13", "lists": ["offers"], "from": "Ed <ed@example.org>"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["subject"], body["lists"], body["from"]) == (
        "Week 13", ["offers"], "Ed <ed@example.org>"
    )  # fmt: skip
    assert body["body"] == issue["body"]  # untouched fields stay
    again = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    assert again["subject"] == "Week 13" and again["lists"] == ["offers"]

    reset = await client.patch(f"/api/v1/issues/{issue['id']}", json={"from": None})
    assert reset.json()["from"] == client.app.state.settings.from_

    assert (await client.delete(f"/api/v1/issues/{issue['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/issues/{issue['id']}")).status_code == 404
    assert (await client.patch("/api/v1/issues/999999", json={"subject": "x"})).status_code == 404


async def test_admin_token_required(anon: AppClient, news: int) -> None:
    assert (await anon.get("/api/v1/issues")).status_code == 401
    response = await anon.post(
        "/api/v1/issues", json={"subject": "x", "lists": ["news"], "body": "hi"}
    )
    assert response.status_code == 401


def _field(response: object) -> str:
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    return str(detail[0]["loc"][-1])


BAD_INPUT: list[tuple[dict[str, object], str]] = [
    ({"subject": "Hello\r\nBcc: victim@example.org"}, "subject"),
    ({"subject": "Hello\nthere"}, "subject"),
    ({"from": "Evil\r\n <evil@example.org>"}, "from"),
    ({"from": "not an address"}, "from"),
    ({"body": "{% if %}broken"}, "body"),
    ({"body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, "body"),
    ({"body": "{{ subscriber.__init__.__globals__ }}"}, "body"),
    ({"lists": ["nope"]}, "lists"),
    ({"lists": []}, "lists"),
    ({"template": "no-such-layout"}, "template"),
    ({"format": "docx"}, "format"),
]


async def test_bad_input_is_422_naming_the_field(client: AppClient, news: int) -> None:
    """Each bad change of the table, at create and at update: a 422 naming the field, and
    nothing half-written (no issue created, the updated one as it was)."""
    issue = await make_issue(client, body="Hi")
    for change, field in BAD_INPUT:
        payload = {"subject": "Fine", "lists": ["news"], "format": "markdown", "body": "Hi"}
        response = await client.post("/api/v1/issues", json=payload | change)
        assert response.status_code == 422, (change, response.text)
        assert _field(response) == field, (change, response.json())
        patched = await client.patch(f"/api/v1/issues/{issue['id']}", json=change)
        assert patched.status_code == 422, (change, patched.text)
        assert _field(patched) == field, (change, patched.json())
    assert [i["id"] for i in (await client.get("/api/v1/issues")).json()["items"]] == [issue["id"]]
    stored = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    assert stored == issue


async def test_list_paginates_and_filters(client: AppClient, news: int) -> None:
    ids = [(await make_issue(client, subject=f"Issue {n}"))["id"] for n in range(5)]
    seen: list[int] = []
    cursor = None
    for _ in range(10):  # bounded: 5 issues, pages of 2
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/issues", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    await client.post(f"/api/v1/issues/{ids[0]}/cancel")
    cancelled = (await client.get("/api/v1/issues", params={"status": "cancelled"})).json()
    assert [i["id"] for i in cancelled["items"]] == [ids[0]]
    drafts = (await client.get("/api/v1/issues", params={"status": "draft"})).json()
    assert [i["id"] for i in drafts["items"]] == ids[1:]

    assert (await client.get("/api/v1/issues", params={"cursor": "garbage!"})).status_code == 422
    assert (await client.get("/api/v1/issues", params={"limit": 1001})).status_code == 422
    assert (await client.get("/api/v1/issues", params={"status": "nope"})).status_code == 422


async def test_preview_is_what_the_subscriber_gets(client: AppClient, news: int) -> None:
    sub = await make_subscriber(
        client, "zoe@example.org", name='<b>Zoë</b> & "Co"', lists={"news": "confirmed"}
    )
    issue = await make_issue(client, subject="Grüße, week 12")
    url = f"/api/v1/issues/{issue['id']}/preview"

    html = await client.get(url, params={"format": "html", "subscriber_id": sub})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "&lt;b&gt;Zoë&lt;/b&gt; &amp;" in html.text
    assert "<b>Zoë</b>" not in html.text

    text = await client.get(url, params={"format": "text", "subscriber_id": sub})
    assert text.headers["content-type"].startswith("text/plain")
    assert '<b>Zoë</b> & "Co"' in text.text  # plain text: shown as typed, nothing to escape

    eml = await client.get(url, params={"format": "eml", "subscriber_id": sub})
    assert eml.headers["content-type"].startswith("message/rfc822")
    msg = BytesParser(policy=email.policy.default).parsebytes(eml.content)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "Grüße, week 12"
    assert "zoe@example.org" in msg["To"] and "Zoë" in msg["To"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Weekly News" in msg["List-Id"] and "<news." in msg["List-Id"]
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("http://tidings.test/u/")
    secret = client.app.state.settings.secret_key_value
    token = unsubscribe.rsplit("/", 1)[1]
    assert tokens.read(secret, "unsubscribe", token, count=2) == (sub, issue["id"])
    assert msg.get_content_type() == "multipart/alternative"
    assert unsubscribe in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    sample = await client.get(url)
    assert sample.status_code == 200 and "Alex Example" in sample.text
    assert (await client.get(url, params={"subscriber_id": 999999})).status_code == 404
    assert (await client.get(url, params={"format": "pdf"})).status_code == 422
    assert (await client.get("/api/v1/issues/999999/preview")).status_code == 404


async def test_test_send_arrives_and_is_counted_nowhere(
    client: AppClient, smtpd: SMTPServer, news: int
) -> None:
    issue = await make_issue(client)
    response = await client.post(
        f"/api/v1/issues/{issue['id']}/test",
        json={"emails": ["editor@example.org", "Proof@Example.org"]},
    )
    assert response.status_code == 202, response.text
    assert len(smtpd.received) == 2
    [got] = smtpd.to("editor@example.org")
    assert got.message["Subject"] == "Week 12"
    assert got.message["List-Unsubscribe"]
    assert "editor" in got.message.get_body(("plain",)).get_content()
    assert await delivery_rows(client) == 0
    stored = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    assert stored["status"] == "draft" and stored["recipients"] == 0


@pytest.mark.parametrize(
    "emails", [[], ["not-an-address"], [f"u{n}@example.org" for n in range(21)]]
)
async def test_test_send_validates_addresses(
    client: AppClient, smtpd: SMTPServer, news: int, emails: list[str]
) -> None:
    issue = await make_issue(client)
    response = await client.post(f"/api/v1/issues/{issue['id']}/test", json={"emails": emails})
    assert response.status_code == 422
    assert smtpd.received == []


async def test_test_send_refused_by_server_is_502(
    client: AppClient, smtpd: SMTPServer, news: int
) -> None:
    issue = await make_issue(client)
    smtpd.reply = lambda _received: "550 5.1.1 no such user"
    response = await client.post(
        f"/api/v1/issues/{issue['id']}/test", json={"emails": ["gone@example.org"]}
    )
    assert response.status_code == 502
    assert "gone@example.org" in response.json()["detail"]
