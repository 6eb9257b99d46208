"""Consent rules of memberships.py, through every path: an opt-out is undone only by her."""

from __future__ import annotations

from tests.conftest import AppClient
from tests.smtp import SMTPServer
from tests.subscribers import factory
from tests.subscribers.helpers import add, confirm_token, make_list


async def _memberships(client: AppClient, subscriber_id: int) -> dict[str, dict[str, object]]:
    export = (await client.get(f"/api/v1/subscribers/{subscriber_id}/export")).json()
    return {s["slug"]: s for s in export["subscriptions"]}


async def _leave(client: AppClient, subscriber_id: int) -> None:
    """She unsubscribes from everything through the link in her email."""
    token = factory.token(client.app, subscriber_id, 0)
    assert (await client.post(f"/u/{token}", data={"everything": "1"})).status_code == 200


async def test_confirming_again_clears_the_old_opt_out_time(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    """Every path that confirms clears unsubscribed_at (only the preference page did)."""
    await make_list(client, "news", double_opt_in=True)
    ann = await add(client, "ann@example.org", lists=["news"])
    await _leave(client, ann["id"])
    assert (await _memberships(client, ann["id"]))["news"]["unsubscribed_at"] is not None
    r = await anon.post("/api/v1/subscribe", json={"email": "ann@example.org", "lists": ["news"]})
    assert r.json() == {"status": "pending"}
    token = confirm_token(smtpd, "ann@example.org")
    assert (await anon.post(f"/subscribe/confirm/{token}")).status_code == 200
    news = (await _memberships(client, ann["id"]))["news"]
    assert news["status"] == "confirmed" and news["unsubscribed_at"] is None


async def test_a_stranger_cannot_resubscribe_her_to_a_single_opt_in_list(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    """Issue 16: after her opt-out, a sign-up by anyone asks her inbox first."""
    await make_list(client, "single", double_opt_in=False)
    alice = await add(client, "alice@example.org", lists=["single"])
    await _leave(client, alice["id"])
    smtpd.reset()
    body = {"email": "alice@example.org", "lists": ["single"]}
    r = await anon.post("/api/v1/subscribe", json=body)
    # The same answer as for an unknown address: the answer must not tell who is on file.
    unknown = await anon.post("/api/v1/subscribe", json={**body, "email": "new@example.org"})
    assert r.json() == unknown.json() == {"status": "confirmed"}
    assert (await _memberships(client, alice["id"]))["single"]["status"] == "pending"
    await anon.post("/api/v1/subscribe", json=body)  # a second try confirms nothing either
    assert (await _memberships(client, alice["id"]))["single"]["status"] == "pending"
    assert len(smtpd.to("alice@example.org")) == 2  # each try sends her the link again
    token = confirm_token(smtpd, "alice@example.org")  # the decision went to her inbox
    await anon.post(f"/subscribe/confirm/{token}")
    assert (await _memberships(client, alice["id"]))["single"]["status"] == "confirmed"


async def test_an_admin_cannot_undo_her_opt_out(client: AppClient) -> None:
    await make_list(client, "news")
    ann = await add(client, "ann@example.org", lists=["news"])
    await _leave(client, ann["id"])
    r = await client.patch(
        f"/api/v1/subscribers/{ann['id']}",
        json={"lists": [{"slug": "news", "status": "confirmed"}]},
    )
    assert r.status_code == 409 and "unsubscribed" in r.json()["detail"]
    assert (await _memberships(client, ann["id"]))["news"]["status"] == "unsubscribed"


async def test_an_import_cannot_undo_her_opt_out(client: AppClient) -> None:
    await make_list(client, "news")
    ann = await add(client, "ann@example.org", lists=["news"])
    await _leave(client, ann["id"])
    r = await client.post(
        "/api/v1/subscribers/import?list=news",
        content=b"email\nann@example.org\n",
        headers={"content-type": "text/csv"},
    )
    assert r.json()["skipped"] == 1
    assert (await _memberships(client, ann["id"]))["news"]["status"] == "unsubscribed"


async def test_preference_page_never_confirms_a_list_she_did_not_choose(
    client: AppClient, anon: AppClient
) -> None:
    """Issue 16: a pending list (a stranger's sign-up) is shown unticked; saving keeps it so."""
    await make_list(client, "news")
    await make_list(client, "offers", double_opt_in=True)
    ann = await add(client, "ann@example.org", lists=["news"])
    await anon.post("/api/v1/subscribe", json={"email": "ann@example.org", "lists": ["offers"]})
    url = f"/preferences/{factory.token(client.app, ann['id'], 0)}"
    page = (await anon.get(url)).text
    assert page.count(" checked") == 1 and 'value="news" checked' in page
    await anon.post(url, data={"list": ["news"]})  # the form as shown
    lists = await _memberships(client, ann["id"])
    assert lists["offers"]["status"] == "pending" and lists["news"]["status"] == "confirmed"
    await anon.post(url, data={"list": ["news", "offers"]})  # her own tick confirms it
    assert (await _memberships(client, ann["id"]))["offers"]["status"] == "confirmed"


async def test_duplicate_list_entries_in_a_patch_are_one_change(client: AppClient) -> None:
    """Issue 16: ~500 duplicates were a 500 (zip of unequal lengths); the last word wins."""
    await make_list(client, "news")
    ann = await add(client, "ann@example.org")
    lists = [{"slug": "news", "status": "pending"}] * 499 + [
        {"slug": "news", "status": "confirmed"}
    ]
    r = await client.patch(f"/api/v1/subscribers/{ann['id']}", json={"lists": lists})
    assert r.status_code == 200, r.text
    assert r.json()["lists"] == [{"slug": "news", "status": "confirmed"}]
