"""An erased person's links act on no one, ever; old confirm links say what is true."""

from __future__ import annotations

from tests.conftest import AppClient
from tests.smtp import SMTPServer
from tests.subscribers import factory
from tests.subscribers.helpers import add, confirm_token, make_list


async def test_erased_carols_links_never_reach_dave(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    """Issue 16: SQLite handed Carol's id to Dave, and her old links acted on him."""
    await make_list(client, "news", double_opt_in=True)
    await add(client, "ann@example.org", lists=["news"])
    await anon.post("/api/v1/subscribe", json={"email": "carol@example.org", "lists": ["news"]})
    carol_confirm = confirm_token(smtpd, "carol@example.org")
    carol = (await client.get("/api/v1/subscribers?q=carol")).json()["items"][0]
    carol_unsubscribe = factory.token(client.app, carol["id"], 0)
    assert (await client.delete(f"/api/v1/subscribers/{carol['id']}")).status_code == 204

    await anon.post("/api/v1/subscribe", json={"email": "dave@example.org", "lists": ["news"]})
    dave = (await client.get("/api/v1/subscribers?q=dave")).json()["items"][0]
    assert dave["id"] != carol["id"]
    for method, url in (
        ("GET", f"/u/{carol_unsubscribe}"),
        ("POST", f"/u/{carol_unsubscribe}"),
        ("GET", f"/preferences/{carol_unsubscribe}"),
        ("GET", f"/subscribe/confirm/{carol_confirm}"),
        ("POST", f"/subscribe/confirm/{carol_confirm}"),
    ):
        r = await anon.request(method, url)
        assert r.status_code == 404, (method, url)
        assert "dave" not in r.text
    after = (await client.get(f"/api/v1/subscribers/{dave['id']}")).json()
    assert after["lists"] == [{"slug": "news", "status": "pending"}]


async def test_issue_ids_are_not_reused_either(client: AppClient) -> None:
    """Unsubscribe tokens carry an issue id: a deleted draft's id is never handed out again."""
    await make_list(client, "news")
    body = {"subject": "S", "lists": ["news"], "format": "markdown", "body": "Hi"}
    first = (await client.post("/api/v1/issues", json=body)).json()["id"]
    assert (await client.delete(f"/api/v1/issues/{first}")).status_code in (200, 204)
    second = (await client.post("/api/v1/issues", json=body)).json()["id"]
    assert second != first


async def test_an_used_confirm_link_says_already_confirmed_and_names_the_list(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news", name="The Weekly News", double_opt_in=True)
    await anon.post("/api/v1/subscribe", json={"email": "teresa@example.org", "lists": ["news"]})
    url = f"/subscribe/confirm/{confirm_token(smtpd, 'teresa@example.org')}"
    first = await anon.post(url)
    assert "Subscription confirmed" in first.text and "The Weekly News" in first.text
    for again in (await anon.post(url), await anon.get(url)):
        assert "Already confirmed" in again.text and "The Weekly News" in again.text
        assert "Confirm my subscription" not in again.text


async def test_an_old_confirm_link_after_she_left_says_what_is_true(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    """Issue 10: it answered "your subscription is confirmed" while she stayed unsubscribed."""
    await make_list(client, "news", name="The Weekly News", double_opt_in=True)
    await anon.post("/api/v1/subscribe", json={"email": "teresa@example.org", "lists": ["news"]})
    url = f"/subscribe/confirm/{confirm_token(smtpd, 'teresa@example.org')}"
    await anon.post(url)
    teresa = (await client.get("/api/v1/subscribers?q=teresa")).json()["items"][0]
    await anon.post(f"/u/{factory.token(client.app, teresa['id'], 0)}", data={"everything": "1"})
    r = await anon.post(url)
    assert "is confirmed" not in r.text and "Thank you" not in r.text
    assert "You unsubscribed from The Weekly News" in r.text
    after = (await client.get(f"/api/v1/subscribers/{teresa['id']}")).json()
    assert after["lists"] == [{"slug": "news", "status": "unsubscribed"}]
