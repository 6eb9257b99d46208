"""Public sign-up, double opt-in and the confirm link, over JSON and HTML forms."""

from __future__ import annotations

import re
import time
from unittest import mock

from app import tokens
from tests.conftest import AppClient
from tests.smtp import SMTPServer
from tests.subscribers.helpers import add, confirm_token, make_list

HTML = {"accept": "text/html,application/xhtml+xml"}


async def subscriber(client: AppClient, email: str) -> dict:  # type: ignore[type-arg]
    items = (await client.get("/api/v1/subscribers", params={"q": email})).json()["items"]
    assert len(items) == 1, items
    return items[0]  # type: ignore[no-any-return]


async def test_double_opt_in_round_trip(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news", name="The News")
    response = await anon.post(
        "/api/v1/subscribe", json={"email": "reader@example.com", "name": "Rea", "lists": ["news"]}
    )
    assert response.status_code == 202 and response.json() == {"status": "pending"}
    token = confirm_token(smtpd, "reader@example.com")
    message = smtpd.to("reader@example.com")[-1].message
    assert "Rea" in message["To"] and "confirm" in message["Subject"].lower()
    assert message.get_body(preferencelist=("html",)) is not None
    assert (await subscriber(client, "reader@example.com"))["lists"][0]["status"] == "pending"

    page = await anon.get(f"/subscribe/confirm/{token}")  # what a mail scanner does
    assert page.status_code == 200 and "<button" in page.text and "The News" in page.text
    assert (await subscriber(client, "reader@example.com"))["lists"][0]["status"] == "pending"

    done = await anon.post(f"/subscribe/confirm/{token}")
    assert done.status_code == 200 and "confirmed" in done.text.lower()
    assert (await subscriber(client, "reader@example.com"))["lists"][0]["status"] == "confirmed"
    assert (await anon.post(f"/subscribe/confirm/{token}")).status_code == 200  # idempotent


async def test_single_opt_in_confirms_at_once(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "open", double_opt_in=False)
    response = await anon.post(
        "/api/v1/subscribe", json={"email": "o@example.com", "lists": ["open"]}
    )
    assert response.status_code == 202 and response.json() == {"status": "confirmed"}
    assert (await subscriber(client, "o@example.com"))["lists"][0]["status"] == "confirmed"
    assert smtpd.received == []


async def test_same_answer_whoever_the_address_is(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news")
    await add(client, "known@example.com", name="Known", attributes={"plan": "pro"}, lists=["news"])
    blocked = await add(client, "blocked@example.com", lists=["news"])
    await client.patch(f"/api/v1/subscribers/{blocked['id']}", json={"status": "blocklisted"})
    answers = []
    for email in ("new@example.com", "known@example.com", "blocked@example.com"):
        r = await anon.post(
            "/api/v1/subscribe",
            json={
                "email": email,
                "name": "Mallory",
                "lists": ["news"],
                "attributes": {"plan": "free"},
            },
        )
        answers.append((r.status_code, r.json()))
    assert answers == [(202, {"status": "pending"})] * 3
    # Only the new address got an email; the known one was not defaced.
    assert sorted(r for m in smtpd.received for r in m.recipients) == ["new@example.com"]
    after = await subscriber(client, "known@example.com")
    assert after["name"] == "Known" and after["attributes"] == {"plan": "pro"}
    assert after["lists"] == [{"slug": "news", "status": "confirmed"}]
    new = await subscriber(client, "new@example.com")
    assert new["name"] == "Mallory" and new["attributes"] == {"plan": "free"}
    assert (await subscriber(client, "blocked@example.com"))["status"] == "blocklisted"


async def test_unsubscribed_goes_back_to_pending(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news")
    sub = await add(client, "back@example.com", lists=["news"])
    await client.patch(
        f"/api/v1/subscribers/{sub['id']}",
        json={"lists": [{"slug": "news", "status": "unsubscribed"}]},
    )
    r = await anon.post("/api/v1/subscribe", json={"email": "back@example.com", "lists": ["news"]})
    assert r.json() == {"status": "pending"}
    assert (await subscriber(client, "back@example.com"))["lists"][0]["status"] == "pending"
    assert confirm_token(smtpd, "back@example.com")


async def test_erased_address_comes_back_only_through_confirmation(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "open", double_opt_in=False)
    sub = await add(client, "again@example.com", lists=["open"])
    await client.delete(f"/api/v1/subscribers/{sub['id']}")
    r = await anon.post("/api/v1/subscribe", json={"email": "again@example.com", "lists": ["open"]})
    assert r.json() == {"status": "confirmed"}  # the answer depends on the list only
    assert (await subscriber(client, "again@example.com"))["lists"][0]["status"] == "pending"
    token = confirm_token(smtpd, "again@example.com")
    await anon.post(f"/subscribe/confirm/{token}")
    assert (await subscriber(client, "again@example.com"))["lists"][0]["status"] == "confirmed"
    # The person's own consent lifted the suppression: an admin may manage them again.
    second = await client.post("/api/v1/subscribers", json={"email": "again@example.com"})
    assert second.status_code == 409 and "exists" in second.json()["detail"]


async def test_bad_sign_up_input(client: AppClient, anon: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "hidden", public=False)
    cases = [
        ({"email": "nope", "lists": ["news"]}, "email"),
        ({"email": "a@example.com", "lists": ["missing"]}, "missing"),
        ({"email": "a@example.com", "lists": ["hidden"]}, "hidden"),
        ({"email": "a@example.com", "lists": []}, "lists"),
        ({"email": "a@example.com", "lists": "news"}, "lists"),
        ({"email": 42, "lists": ["news"]}, "email"),
        ({"email": "a@example.com", "name": "x\nBcc: y", "lists": ["news"]}, "name"),
        ([1, 2], "body"),
    ]
    for body, word in cases:
        r = await anon.post("/api/v1/subscribe", json=body)
        assert r.status_code == 422, (body, r.text)
        assert word in str(r.json()["detail"]), (body, r.text)
    bad = await anon.post(
        "/api/v1/subscribe", content=b'{"email":', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422 and "JSON" in str(bad.json()["detail"])
    big = await anon.post(
        "/api/v1/subscribe", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert big.status_code == 413
    assert (await client.get("/api/v1/subscribers")).json()["items"] == []


async def test_html_form_post_redirects_or_shows_errors(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news", name="The News")
    await make_list(client, "more", name="More", double_opt_in=False)
    ok = await anon.post(
        "/api/v1/subscribe",
        data={"email": "form@example.com", "list": ["news", "more"]},
        headers=HTML,
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/subscribe/thanks?status=pending"
    thanks = await anon.get(ok.headers["location"])
    assert thanks.status_code == 200 and "inbox" in thanks.text
    lists = (await subscriber(client, "form@example.com"))["lists"]
    assert lists == [{"slug": "more", "status": "confirmed"}, {"slug": "news", "status": "pending"}]

    bad = await anon.post(
        "/api/v1/subscribe",
        data={"email": "not an address", "name": "<b>Bo</b>", "list": "news"},
        headers=HTML,
    )
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert 'aria-describedby="email-error"' in bad.text and 'id="email-error"' in bad.text
    assert "&lt;b&gt;Bo&lt;/b&gt;" in bad.text and "<b>Bo</b>" not in bad.text
    none = await anon.post("/api/v1/subscribe", data={"email": "a@example.com"}, headers=HTML)
    assert none.status_code == 422 and 'id="list-error"' in none.text
    # A form post without Accept: text/html (a script) gets JSON.
    plain = await anon.post("/api/v1/subscribe", data={"email": "s@example.com", "list": "news"})
    assert plain.status_code == 202 and plain.json() == {"status": "pending"}


async def test_hosted_form_page(client: AppClient, anon: AppClient) -> None:
    empty = await anon.get("/subscribe")
    assert empty.status_code == 200 and "nothing to subscribe" in empty.text
    await make_list(client, "news", name="The News")
    one = await anon.get("/subscribe")
    assert 'type="hidden" name="list" value="news"' in one.text
    assert 'autocomplete="email"' in one.text and '<label for="email">' in one.text
    assert 'name="viewport"' in one.text and 'lang="en"' in one.text and "Skip to" in one.text
    assert (
        "<script" not in one.text and "http" not in one.text.split("<style>")[0].split("</head>")[0]
    )
    await make_list(client, "more", name="<More & More>")
    await make_list(client, "secret", public=False)
    two = await anon.get("/subscribe", params={"list": "more"})
    assert re.search(r'id="list-more"[^>]*\bchecked\b', two.text)
    assert not re.search(r'id="list-news"[^>]*\bchecked\b', two.text)
    assert "&lt;More &amp; More&gt;" in two.text and "secret" not in two.text
    assert "default-src 'none'" in two.headers["content-security-policy"]


async def test_bad_confirm_tokens_are_404_revealing_nothing(
    client: AppClient, anon: AppClient
) -> None:
    secret = client.app.state.settings.secret_key_value
    forged = tokens.make("another-secret", "confirm", 1)
    wrong_purpose = tokens.make(secret, "unsubscribe", 1, 0)
    unknown = tokens.make(secret, "confirm", 987654)
    for token in (forged, wrong_purpose, unknown, "x" * 40, forged[:-2]):
        for method in (anon.get, anon.post):
            r = await method(f"/subscribe/confirm/{token}")
            assert r.status_code == 404 and "not valid" in r.text


async def test_confirm_link_expires_after_a_week(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news")
    sub = await add(client, "late@example.com", lists=["news"], subscription_status="pending")
    secret = client.app.state.settings.secret_key_value

    with mock.patch("time.time", return_value=time.time() - 8 * 24 * 3600):
        old = tokens.make(secret, "confirm", sub["id"])
    assert (await anon.post(f"/subscribe/confirm/{old}")).status_code == 404
    assert (await subscriber(client, "late@example.com"))["lists"][0]["status"] == "pending"


async def test_smtp_down_does_not_fail_the_sign_up(app_factory, smtpd: SMTPServer) -> None:  # type: ignore[no-untyped-def]
    client = await app_factory(smtp_url="smtp://127.0.0.1:1?timeout=2")
    await make_list(client, "news")
    r = await client.post("/api/v1/subscribe", json={"email": "x@example.com", "lists": ["news"]})
    assert r.status_code == 202 and r.json() == {"status": "pending"}
    assert (await subscriber(client, "x@example.com"))["lists"][0]["status"] == "pending"


async def test_confirmation_send_is_bounded(monkeypatch, smtpd: SMTPServer) -> None:  # type: ignore[no-untyped-def]
    """A server that stalls past SEND_TIMEOUT costs a logged failure, not a hung sign-up."""
    from app.delivery.transport import Envelope, Mailer, build_transports
    from app.subscribers import emails

    smtpd.reply = lambda _received: (time.sleep(3), "250 OK")[1]
    monkeypatch.setattr(emails, "SEND_TIMEOUT", 0.5)
    mailer = Mailer(build_transports(smtpd.url, None))  # type: ignore[arg-type]
    envelope = Envelope("a@example.com", ("b@example.com",), b"Subject: x\r\n\r\nhi\r\n")
    try:
        assert await emails.send_confirmation(mailer, envelope) is False
    finally:
        await mailer.close()


async def test_sign_up_and_confirm_are_rate_limited(app_factory) -> None:  # type: ignore[no-untyped-def]
    client = await app_factory(public_rate_limit=2)
    await make_list(client, "open", double_opt_in=False)
    body = {"email": "r@example.com", "lists": ["open"]}
    codes = [(await client.post("/api/v1/subscribe", json=body)).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    token = tokens.make(client.app.state.settings.secret_key_value, "confirm", 1)
    codes = [(await client.get(f"/subscribe/confirm/{token}")).status_code for _ in range(3)]
    assert codes[-1] == 429
