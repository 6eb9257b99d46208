"""People without a name: `default()` works for them, and a preview can show one."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber, set_issue
from tests.smtp import SMTPServer

IDIOM = '{{ subscriber.name | default("colleague") }}'


async def test_default_fills_in_a_missing_name_in_subject_body_and_archive(
    client: AppClient, anon: AppClient
) -> None:
    await make_list(client, "news")
    nameless = await make_subscriber(client, "nn@example.org", lists={"news": "confirmed"})
    named = await make_subscriber(client, "ann@example.org", name="Ann")
    issue = await make_issue(client, subject=f"Hi {IDIOM}: results", body=f"Dear {IDIOM},\n")
    url = f"/api/v1/issues/{issue['id']}/preview"
    for params, who in (
        ({"subscriber_id": nameless}, "colleague"),
        ({"subscriber_id": named}, "Ann"),
        ({"sample": "nameless"}, "colleague"),
        ({}, "Alex Example"),
    ):
        text = (await client.get(url, params={**params, "format": "text"})).text
        assert f"Dear {who}," in text, (params, text)
        eml = await client.get(url, params={**params, "format": "eml"})
        message = BytesParser(policy=email.policy.default).parsebytes(eml.content)
        assert message["Subject"] == f"Hi {who}: results"
    assert (await client.get(url, params={"sample": "nobody"})).status_code == 422
    for too_big in (2**63, -1, 0):  # a 422, never a driver error past bigint
        assert (await client.get(url, params={"subscriber_id": too_big})).status_code == 422

    await set_issue(client, issue["id"], status="sent")
    assert "Hi colleague: results" in (await anon.get("/archive")).text
    assert "Dear colleague," in (await anon.get(f"/archive/{issue['id']}")).text


async def test_a_test_message_links_to_a_page_that_says_it_was_a_test(
    client: AppClient, anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news")
    issue = await make_issue(client)
    sent = await client.post(f"/api/v1/issues/{issue['id']}/test", json={"emails": ["ed@ex.org"]})
    assert sent.status_code == 202
    [received] = smtpd.to("ed@ex.org")
    text = received.message.get_body(("plain",)).get_content()
    unsubscribe = received.message["List-Unsubscribe"].strip("<>")
    preferences = next(w for w in text.split() if "/preferences" in w)
    for link in (unsubscribe, preferences):
        assert link in text and link.startswith("http://tidings.test/")
        page = await anon.get(link.removeprefix("http://tidings.test"))
        assert page.status_code == 200, link
        assert "test message" in page.text
    one_click = await anon.post(unsubscribe.removeprefix("http://tidings.test"))
    assert one_click.status_code == 200 and "nothing was changed" in one_click.text
